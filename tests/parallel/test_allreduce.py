"""Real two-process allreduce through horovod.torch and horovod.tensorflow, with every launcher."""

import re
import sys

import pytest

from harness.runtime.launch import launch_command

pytestmark = pytest.mark.parallel
WORKER = ["python", "tests/parallel/allreduce_worker.py"]


def _assert_both_ranks_summed(proc):
    assert proc.returncode == 0, proc.output
    lines = re.findall(r"rank (\d)/2 torch=\[3.0, 30.0\] tf=\[3.0, 30.0\] ok", proc.output)
    assert sorted(lines) == ["0", "1"], proc.output


@pytest.mark.parametrize("controller", ["gloo", "mpi"])
def test_horovodrun_two_workers(controller, launched):
    cmd = launch_command([sys.executable, *WORKER[1:]], launcher="horovodrun", np=2, hosts="localhost:2",
                         controller=controller)
    _assert_both_ranks_summed(launched(cmd))


def test_mpirun_with_the_localhost_hostfile(launched):
    cmd = launch_command([sys.executable, *WORKER[1:]], launcher="mpirun", np=2, hostfile="hostfiles/localhost")
    _assert_both_ranks_summed(launched(cmd))
