"""Failure markers and fault injection for ``harness train``.

* A rank that fails writes ``DIR/failure-rank<R>.json``; rank 0 and ``harness report`` name it.
* ``HARNESS_FAULT=RANK:STEP:MODE`` (MODE ``kill``, ``raise`` or ``nan``) makes rank RANK fail at
  step STEP: for testing failure handling and resume, as a chaos tool would.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np

FAULT_MODES = ("kill", "raise", "nan")


def write_failure(out: Path, rank: int, step: int, error: BaseException) -> None:
    """Leave ``failure-rank<R>.json`` so rank 0 and ``harness report`` can name the failing rank."""
    try:
        (out / f"failure-rank{rank}.json").write_text(json.dumps(
            {"rank": rank, "step": step, "error": f"{type(error).__name__}: {error}"}) + "\n")
    except OSError:
        pass


def is_peer_shutdown(exc: BaseException) -> bool:
    """True for Horovod's error on a healthy rank when another rank stopped (HorovodInternalError)."""
    return "horovod" in type(exc).__module__.lower() or "Horovod" in type(exc).__name__


def read_failures(out: Path, *, exclude_rank: int | None = None) -> list[dict]:
    """The failure markers in ``out`` (other than ``exclude_rank``'s), by rank."""
    found = []
    for path in sorted(out.glob("failure-rank*.json")):
        try:
            marker = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if marker.get("rank") != exclude_rank:
            found.append(marker)
    return found


def describe_failures(markers: list[dict]) -> str:
    """``rank 1 failed at step 3: RuntimeError: ...`` for each marker."""
    return "; ".join(f"rank {m['rank']} failed at step {m['step']}: {m['error']}" for m in markers)


def describe_lost_peers(rank_hosts: list[str] | None, rank: int) -> str:
    """Name the hosts this rank lost contact with when a collective failed and no failure marker says why.

    Horovod's error on the surviving rank names no peer (Gloo logs ``Timed out waiting ...ms for recv``
    or ``Read error [ADDR]:PORT``), so every other rank's host comes from the placement gathered at the
    start (:func:`harness.runtime.records.placement`, ``rank_hosts``): with one peer host that is the
    host that failed.

    Args:
        rank_hosts: the host of each rank, in rank order (None or empty when unknown).
        rank: this rank.

    Returns:
        e.g. ``lost contact with host node2 (rank 1)``, or with several peer hosts
        ``lost contact with one of the hosts node2 (rank 1), node3 (ranks 2, 3)``.
    """
    if not rank_hosts or rank >= len(rank_hosts):
        return "the launcher's output names it"
    mine, peers = rank_hosts[rank], {}
    for r, host in enumerate(rank_hosts):
        if r != rank:
            peers.setdefault(host, []).append(r)
    if not peers:
        return "the launcher's output names it"
    named = [f"{host} (rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))}"
             f"{', this host' if host == mine else ''})"
             for host, ranks in sorted(peers.items(), key=lambda item: (item[0] == mine, item[1]))]
    return f"lost contact with {'host' if len(named) == 1 else 'one of the hosts'} {', '.join(named)}"


def parse_fault(text: str | None) -> tuple[int, int, str] | None:
    """``"1:5:kill"`` → (1, 5, "kill"); None when unset.

    Raises:
        ValueError: malformed value.
    """
    if not text:
        return None
    parts = text.split(":")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit() or parts[2] not in FAULT_MODES:
        raise ValueError(f"HARNESS_FAULT must be RANK:STEP:MODE with MODE in {', '.join(FAULT_MODES)}, got {text!r}")
    return int(parts[0]), int(parts[1]), parts[2]


def fail(fault: tuple[int, int, str] | None, rank: int, step: int) -> None:
    """Kill this process (SIGKILL) or raise, if ``fault`` is a ``kill``/``raise`` for this rank and step."""
    if not fault or fault[0] != rank or fault[1] != step:
        return
    if fault[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault[2] == "raise":
        raise RuntimeError(f"injected failure (HARNESS_FAULT) on rank {rank} at step {step}")


def poison(fault: tuple[int, int, str] | None, rank: int, step: int, batch: list) -> list:
    """The batch with every image NaN, if ``fault`` is a ``nan`` for this rank and step; else unchanged."""
    if not fault or fault[0] != rank or fault[1] != step or fault[2] != "nan":
        return batch
    return [(np.full_like(x, np.nan), y) for x, y in batch]
