"""``harness train --np``'s console: rank 0's lines only, whole and untagged, under horovodrun and mpirun;
every rank's output in ``OUT/logs/rank.<r>.log``. How Open MPI's tagged pieces are put back together."""

import re
import sys

import pytest

from harness.runtime.launch import RankLines, launch_command

HARNESS = [sys.executable, "-m", "harness_cli"]
TAG = re.compile(r"\[(\d+,)?\d+\]<std(out|err)>")


def test_open_mpi_pieces_become_whole_lines_per_rank_and_stream():
    # Captured from `mpirun --tag-output -np 2`, each rank printing "out R line 0" with print() under
    # PYTHONUNBUFFERED=1 (the text and the newline are two writes), then "partial " and "rest\n" 0.2 s apart.
    pieces = ["[1,1]<stdout>:out 1 line 0[1,1]<stdout>:",
              "[1,1]<stdout>:partial [1,0]<stdout>:out 0 line 0[1,0]<stdout>:",
              "[1,0]<stdout>:partial [1,1]<stdout>:rest",
              "[1,0]<stdout>:rest",
              "[0]<stderr>:a horovodrun Gloo line",
              "Process 1 exit with status code 1."]
    lines = RankLines()
    assert [line for piece in pieces for line in lines.feed(piece)] == [
        (1, "stdout", "out 1 line 0"), (0, "stdout", "out 0 line 0"), (1, "stdout", "partial rest"),
        (0, "stdout", "partial rest"), (0, "stderr", "a horovodrun Gloo line"),
        (None, None, "Process 1 exit with status code 1.")]
    assert lines.feed("[1,1]<stderr>:no newline before exit") == [(1, "stderr", "no newline before exit")]
    assert lines.feed("[1,0]<stdout>:cut off[1,1]<stdout>:y") == [(1, "stdout", "y")]
    assert lines.rest() == [(0, "stdout", "cut off")] and lines.rest() == []


def test_mpirun_tags_its_output_only_when_asked():
    assert "--tag-output" in launch_command(["w"], launcher="mpirun", np=2, tag_output=True)
    assert "--tag-output" not in launch_command(["w"], launcher="mpirun", np=2)


@pytest.mark.parallel
@pytest.mark.parametrize("launcher", [["--controller", "gloo"], ["--launcher", "mpirun"]])
def test_console_shows_rank_0_lines_and_every_rank_has_a_log(tmp_path, launched, launcher):
    out = tmp_path / "run"
    proc = launched([*HARNESS, "train", "--np", "2", *launcher, "--model", "mlp", "--dataset", "synthetic",
                     "--train-size", "256", "--per-worker-batch", "64", "--epochs", "4", "--threads", "1",
                     "--out", str(out)])
    assert proc.returncode == 0, proc.output
    lines = proc.output.splitlines()
    epochs = [line.split(":")[0] for line in lines if line.startswith("epoch")]
    assert epochs == ["epoch 0", "epoch 1", "epoch 2", "epoch 3"], proc.output
    summary = [line for line in lines if line.startswith("test accuracy")]
    assert len(summary) == 1 and f"every rank's output: {out}/logs/rank.<r>.log" in summary[0], proc.output
    assert not any(TAG.search(line) for line in lines), proc.output
    assert len(lines) == 6, proc.output  # the launch line, four epochs, the summary
    logs = out / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["launcher.log", "rank.0.log", "rank.1.log"]
    assert "epoch 3:" in (logs / "rank.0.log").read_text() and summary[0] in (logs / "rank.0.log").read_text()
    assert not TAG.search((logs / "rank.0.log").read_text())
