"""``harness hostfile check``: valid files pass, each problem is one line with exit code 2."""

import subprocess
import sys
from pathlib import Path

import pytest

from harness.runtime.hostfile import parse_hostfile, parse_hostfile_text

ROOT = Path(__file__).resolve().parents[2]


def harness(*args):
    return subprocess.run([sys.executable, "-m", "harness_cli", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("name, hosts, slots", [("localhost", 1, 2), ("cluster-4x8.openmpi", 4, 32),
                                                ("cluster-4x8.hosts", 4, 32)])
def test_shipped_hostfiles_are_valid(name, hosts, slots):
    proc = harness("hostfile", "check", f"hostfiles/{name}")
    assert proc.returncode == 0, proc.stderr
    parsed = parse_hostfile(ROOT / "hostfiles" / name, launcher="horovodrun")
    assert (len(parsed.hosts), parsed.total_slots, parsed.problems) == (hosts, slots, ())


@pytest.mark.parametrize("text, launcher, fragment", [
    ("node1 slots=0\n", "any", "slots must be a positive integer, got '0'"),
    ("node1 slots=four\n", "any", "slots must be a positive integer"),
    ("node1 slots=2\nnode1 slots=2\n", "any", "duplicate host 'node1'"),
    ("node1 cpus=2\n", "any", "unknown field 'cpus=2'"),
    ("no_de! slots=2\n", "any", "invalid host name"),
    ("# only a comment\n", "any", "no hosts"),
    ("# cluster\nnode1 slots=2\n", "horovodrun", "does not accept blank or comment lines"),
    ("node1 slots=2 max_slots=4\n", "horovodrun", "does not accept max_slots"),
    ("node1\n", "horovodrun", "exactly 'host slots=N'"),
    ("node1:8,node2:x\n", "any", "entry 2: slots must be a positive integer"),
    ("node1:8,node1:8\n", "any", "duplicate host"),
    ("node1:8\n", "mpirun", "not mpirun"),
])
def test_malformed_files_exit_2_with_one_line_per_problem(tmp_path, text, launcher, fragment):
    path = tmp_path / "hosts"
    path.write_text(text)
    proc = harness("hostfile", "check", "--launcher", launcher, str(path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert any(fragment in line for line in lines), proc.stderr
    assert all(line.startswith("harness: error: ") for line in lines) and "Traceback" not in proc.stderr
    assert path.read_text() == text


def test_open_mpi_dialect_allows_comments_blank_lines_and_default_slots():
    parsed = parse_hostfile_text("# rack 1\n\nnode1 slots=4 max_slots=8  # fast\nnode2\n")
    assert [(h.name, h.slots) for h in parsed.hosts] == [("node1", 4), ("node2", 1)] and not parsed.problems
    assert parsed.as_hosts_arg() == "node1:4,node2:1"


def test_missing_file_and_bad_flag_are_one_line():
    proc = harness("hostfile", "check", "does/not/exist")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "cannot read hostfile" in proc.stderr
    proc = harness("hostfile", "check", "--launcher", "srun", "hostfiles/localhost")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
