"""Hostfiles for the two launchers this project uses: Open MPI's ``mpirun`` and ``horovodrun``.

Two dialects exist:

* **Open MPI** (``mpirun --hostfile F``): one host a line, ``host [slots=N] [max_slots=M]``;
  ``#`` comments and blank lines are allowed; a host without ``slots`` has 1 slot.
* **horovodrun** reads two forms. ``--hostfile F`` takes lines of exactly ``host slots=N``
  and nothing else (Horovod 0.28.1 ``parse_host_files`` fails on comments, blank lines and
  ``max_slots``). ``-H`` takes a comma-separated ``host:N,host:N`` list; a file holding that one
  line can be passed as ``-H "$(cat F)"``.

:func:`parse_hostfile` returns the hosts and every problem found, one line each, so the CLI can
report them all at once.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

LAUNCHERS = ("any", "mpirun", "horovodrun")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")


@dataclasses.dataclass(frozen=True)
class Host:
    """One host of a hostfile: its name and slot count (processes, usually one per GPU)."""

    name: str
    slots: int


@dataclasses.dataclass(frozen=True)
class Hostfile:
    """A parsed hostfile.

    Attributes:
        dialect: ``"openmpi"`` (``host slots=N`` lines) or ``"hosts-list"`` (``host:N,...``).
        hosts: the hosts in file order.
        problems: one human-readable line per problem (``FILE:LINE: what``); empty when valid.
    """

    dialect: str
    hosts: tuple[Host, ...]
    problems: tuple[str, ...]

    @property
    def total_slots(self) -> int:
        """Sum of slots over hosts: the largest world size k the file can launch."""
        return sum(h.slots for h in self.hosts)

    def as_hosts_arg(self) -> str:
        """The file as a horovodrun ``-H`` value, e.g. ``"node1:8,node2:8"``."""
        return ",".join(f"{h.name}:{h.slots}" for h in self.hosts)


def _positive_int(text: str) -> int | None:
    return int(text) if text.isdigit() and int(text) > 0 else None


def _parse_openmpi_line(line: str, where: str, strict: bool) -> tuple[Host | None, list[str]]:
    fields = line.split()
    name, problems, slots = fields[0], [], 1
    if not _HOSTNAME.match(name):
        problems.append(f"{where}: invalid host name {name!r}")
    seen_slots = False
    for field in fields[1:]:
        key, eq, value = field.partition("=")
        if not eq or key not in ("slots", "max_slots", "max-slots"):
            problems.append(f"{where}: unknown field {field!r} (expected slots=N or max_slots=N)")
            continue
        if _positive_int(value) is None:
            problems.append(f"{where}: {key} must be a positive integer, got {value!r}")
            continue
        if key == "slots":
            slots, seen_slots = int(value), True
        elif strict:
            problems.append(f"{where}: horovodrun --hostfile does not accept {key}")
    if strict and (not seen_slots or len(fields) != 2):
        problems.append(f"{where}: horovodrun --hostfile needs exactly 'host slots=N'")
    return (Host(name, slots) if not problems else None), problems


def _parse_hosts_list(text: str, path: str) -> tuple[list[Host], list[str]]:
    hosts, problems = [], []
    for i, item in enumerate(text.strip().split(","), start=1):
        name, colon, slots = item.strip().rpartition(":")
        where = f"{path}: entry {i}"
        if not colon or not name:
            problems.append(f"{where}: expected host:slots, got {item.strip()!r}")
        elif not _HOSTNAME.match(name):
            problems.append(f"{where}: invalid host name {name!r}")
        elif _positive_int(slots) is None:
            problems.append(f"{where}: slots must be a positive integer, got {slots!r}")
        else:
            hosts.append(Host(name, int(slots)))
    return hosts, problems


def _duplicates(hosts: list[Host], path: str) -> list[str]:
    seen, problems = set(), []
    for host in hosts:
        if host.name in seen:
            problems.append(f"{path}: duplicate host {host.name!r}")
        seen.add(host.name)
    return problems


def parse_hostfile_text(text: str, *, path: str = "<hostfile>", launcher: str = "any") -> Hostfile:
    """Parse hostfile text in either dialect and collect every problem.

    Args:
        text: the file's contents.
        path: the name used in problem messages.
        launcher: ``"mpirun"`` (Open MPI rules), ``"horovodrun"`` (what horovodrun accepts:
            strict ``host slots=N`` lines or a ``host:N,...`` list) or ``"any"`` (the rules of
            the dialect the text is written in).

    Returns:
        A :class:`Hostfile`; ``problems`` is empty when the file is valid for ``launcher``.

    Raises:
        ValueError: if ``launcher`` is not one of ``any``, ``mpirun``, ``horovodrun``.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher must be one of {', '.join(LAUNCHERS)}, got {launcher!r}")
    body = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not body:
        return Hostfile("openmpi", (), (f"{path}: no hosts",))
    if len(body) == 1 and ":" in body[0] and "=" not in body[0]:
        if launcher == "mpirun":
            return Hostfile("hosts-list", (), (f"{path}: host:N lists are for horovodrun -H, not mpirun --hostfile",))
        hosts, problems = _parse_hosts_list(body[0], path)
        return Hostfile("hosts-list", tuple(hosts), tuple(problems + _duplicates(hosts, path)))
    strict = launcher == "horovodrun"
    hosts, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{path}:{number}"
        stripped = line.split("#", 1)[0].strip()
        if not stripped:
            if strict:
                problems.append(f"{where}: horovodrun --hostfile does not accept blank or comment lines")
            continue
        host, line_problems = _parse_openmpi_line(stripped, where, strict)
        problems += line_problems
        hosts += [host] if host else []
    return Hostfile("openmpi", tuple(hosts), tuple(problems + _duplicates(hosts, path)))


def parse_hostfile(path: str | Path, *, launcher: str = "any") -> Hostfile:
    """Read and parse a hostfile; see :func:`parse_hostfile_text`.

    Raises:
        OSError: if the file cannot be read.
        ValueError: if ``launcher`` is unknown.
    """
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    return parse_hostfile_text(text, path=str(path), launcher=launcher)
