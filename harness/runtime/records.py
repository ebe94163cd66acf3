"""Run records: JSON Lines written by rank 0 from every rank's data, and the run summary.

Every record has ``kind``, ``rank`` and ``world_size``. Kinds written by ``harness train``:

* ``run``: once, rank 0: the recipe, flags, threads, hosts, Horovod knobs and versions.
* ``step``: one per rank per step: ``step``, ``epoch``, ``loss``, ``lr``, ``step_time_s``,
  ``images`` (n · accumulation).
* ``epoch``: once per epoch, rank 0: ``train_loss`` (mean over ranks), ``test_loss``,
  ``test_accuracy`` (0-1), ``wall_s``.
* ``resize`` (elastic runs): rank 0, at each change of k: ``old_world_size``, ``world_size``, ``hosts``,
  ``global_batch``, ``peak_lr``, ``lr``, ``step``, ``epoch``, ``consumed``, ``update``, ``time``; their
  ``step`` records add ``update``, ``sample_start``, ``sample_end`` and ``time``
  (:mod:`harness.runtime.elastic`).
* the run's summary goes to ``summary.json`` (kind ``train``, ``throughput`` or ``allreduce``).
"""

from __future__ import annotations

import json
import os
import platform
import socket
from pathlib import Path

import numpy as np

RECORDS = "records.jsonl"
SUMMARY = "summary.json"
JOB = "job.json"  # the job a launched worker ran (harness.runtime.worker)
LOGS = "logs"  # every rank's output, written by the launching process (harness.runtime.launch.run_with_rank_logs)


class RecordWriter:
    """Append records to ``DIR/records.jsonl`` (rank 0 only; other ranks pass ``path=None``)."""

    def __init__(self, path: Path | None):
        self.path = path
        self._file = open(path, "a", encoding="utf-8") if path else None

    def write(self, records: list[dict]) -> None:
        """Append records, one JSON object a line, and flush."""
        if self._file:
            for record in records:
                self._file.write(json.dumps(record, default=_jsonable) + "\n")
            self._file.flush()

    def close(self) -> None:
        """Close the file."""
        if self._file:
            self._file.close()


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_records(path: Path) -> list[dict]:
    """Read a records.jsonl file.

    Raises:
        ValueError: naming the file and line of a malformed record.
    """
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{path}:{number}: not a JSON record") from None
            if not isinstance(record, dict) or not {"kind", "rank", "world_size"} <= record.keys():
                raise ValueError(f"{path}:{number}: a record needs kind, rank and world_size")
            records.append(record)
    return records


def timed_steps(step_records: list[dict], skip: int) -> dict[int, np.ndarray]:
    """Per-rank step times in seconds, dropping each rank's first ``skip`` steps (start-up)."""
    by_rank: dict[int, list[tuple[int, float]]] = {}
    for record in step_records:
        by_rank.setdefault(int(record["rank"]), []).append((int(record["step"]), float(record["step_time_s"])))
    return {rank: np.array([t for _, t in sorted(steps)][skip:] or [t for _, t in sorted(steps)])
            for rank, steps in sorted(by_rank.items())}


def throughput(step_records: list[dict], *, images_per_step: int, skip: int) -> dict:
    """Throughput from every rank's own timings, not rank 0 × k.

    ``images_per_second`` = Σ_r (images per step on r) / median step time of r.

    Returns:
        ``images_per_second`` (total), ``images_per_second_per_worker`` (mean), and
        ``step_time_s_median`` (median over all ranks' timed steps), ``step_time_s_per_rank``
        (each rank's median), ``step_time_s_spread`` ((max − min)/median of the rank medians),
        ``timed_steps`` per rank.
    """
    per_rank = timed_steps(step_records, skip)
    medians = {rank: float(np.median(times)) for rank, times in per_rank.items()}
    total = sum(images_per_step / m for m in medians.values())
    values = np.array(list(medians.values()))
    return {
        "images_per_second": total,
        "images_per_second_per_worker": total / len(medians),
        "step_time_s_median": float(np.median(np.concatenate(list(per_rank.values())))),
        "step_time_s_per_rank": [medians[r] for r in sorted(medians)],
        "step_time_s_spread": float((values.max() - values.min()) / np.median(values)),
        "timed_steps": int(min(len(t) for t in per_rank.values())),
    }


INPUT_BOUND_SHARE = 0.05  # a run whose slowest rank waits for data more than this share of its step time


def input_summary(step_records: list[dict], pipelines: list[dict | None], *, skip: int) -> dict:
    """The input side of a run: how long ranks waited for their next batch, against how long they computed.

    Per rank r, over its steps after the first ``skip``: the data-wait share
    ``W_r / (W_r + T_r)`` with ``W_r`` = Σ seconds blocked on the next batch (``data_wait_s``) and
    ``T_r`` = Σ step seconds (``step_time_s``); the run's share is the slowest rank's (the one the
    allreduce waits for). A share above 5% marks the run input-bound.

    Args:
        step_records: every rank's step records (``rank``, ``step``, ``data_wait_s``, ``step_time_s``, ``images``).
        pipelines: each rank's :meth:`harness.runtime.pipeline.ImageSource.stats` (None for in-memory arrays).
        skip: start-up steps per rank left out.

    Returns:
        ``data_wait_share`` (max over ranks, in [0, 1]), ``data_wait_share_per_rank``,
        ``data_wait_s_per_step`` (median over ranks of the mean), ``input_bound``,
        ``compute_images_per_s_per_rank`` (images / Σ step seconds, median over ranks) and, for an image
        source, ``pipeline_images_per_s_per_rank`` (the slowest rank's decode rate),
        ``data_workers``, ``bad_images_skipped`` (all ranks) and ``bad_images`` (the first names).
    """
    by_rank: dict[int, list[dict]] = {}
    for record in step_records:
        by_rank.setdefault(int(record["rank"]), []).append(record)
    shares, waits, compute = {}, [], []
    for rank, records in sorted(by_rank.items()):
        records = sorted(records, key=lambda r: r["step"])
        records = records[skip:] or records
        wait = sum(float(r.get("data_wait_s", 0.0)) for r in records)
        busy = sum(float(r["step_time_s"]) for r in records)
        shares[rank] = wait / (wait + busy) if wait + busy > 0 else 0.0
        waits.append(wait / len(records))
        compute.append(sum(int(r["images"]) for r in records) / busy if busy > 0 else None)
    share = max(shares.values()) if shares else 0.0
    out = {"data_wait_share": share, "data_wait_share_per_rank": [shares[r] for r in sorted(shares)],
           "data_wait_s_per_step": float(np.median(waits)) if waits else 0.0,
           "input_bound": share > INPUT_BOUND_SHARE,
           "compute_images_per_s_per_rank": float(np.median([c for c in compute if c])) if any(compute) else None}
    stats = [p for p in pipelines if p]
    if stats:
        rates = [p["pipeline_images_per_s"] for p in stats if p["pipeline_images_per_s"]]
        out.update(pipeline_images_per_s_per_rank=min(rates) if rates else None,
                   data_workers=stats[0]["data_workers"],
                   bad_images_skipped=sum(p["bad_images_skipped"] for p in stats),
                   bad_images=[name for p in stats for name in p["bad_images"]][:20])
    return out


def local_size() -> int:
    """Ranks the launcher started on this host (Open MPI's or Horovod's local size; 1 when launched alone)."""
    return int(os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE") or os.environ.get("HOROVOD_LOCAL_SIZE") or 1)


def usable_cpus() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``: an emulated host's share, a Slurm
    allocation), or ``os.cpu_count()`` where the platform cannot say."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def environment() -> dict:
    """Host, Python and library versions for a ``run`` record.

    ``versions`` names the TensorFlow distribution that is installed (``tensorflow-cpu``, or ``tensorflow``
    for the GPU build) and records the torch build as ``torch.version.cuda``: the CUDA version torch was
    built for, ``None`` for the CPU build. It is read from the imported module when torch is imported,
    else from the installed ``torch/version.py``, so that recording never imports torch.
    """
    import importlib.metadata as md
    import re
    import sys

    versions = {}
    for name in ("numpy", "torch", "tensorflow-cpu", "tensorflow", "keras", "horovod"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    if "torch" in versions:
        torch = sys.modules.get("torch")
        if torch is not None and hasattr(torch, "version"):
            versions["torch.version.cuda"] = torch.version.cuda
        else:
            path = Path(md.distribution("torch").locate_file("torch/version.py"))
            found = re.search(r"^cuda\b[^=\n]*=\s*['\"]([^'\"]+)", path.read_text(), re.M) if path.is_file() else None
            versions["torch.version.cuda"] = found.group(1) if found else None
    return {"host": socket.gethostname(), "python": platform.python_version(), "versions": versions,
            "cpu_count": os.cpu_count(), "usable_cpus": usable_cpus(),
            "horovod_env": {k: v for k, v in os.environ.items() if k.startswith("HOROVOD_")}}


def prepare_out_dir(out: Path, overwrite: bool) -> str | None:
    """Create the run directory; the problem as one line (naming fields ``out`` and ``overwrite``) if it
    has files other than its job file and its logs (:data:`JOB`, :data:`LOGS`, written by whoever launched
    the run) and no ``overwrite``."""
    if out.exists() and not out.is_dir():
        return f"out {out} exists and is not a directory"
    if out.is_dir() and any(p.name not in (JOB, LOGS) for p in out.iterdir()) and not overwrite:
        return f"out {out} already has files; pass overwrite or choose a new directory"
    out.mkdir(parents=True, exist_ok=True)
    for name in (RECORDS, SUMMARY):
        (out / name).unlink(missing_ok=True)
    return None


def placement(engine) -> dict:
    """Where every rank ran, gathered from all ranks (a collective: call it on every rank).

    Returns:
        ``hosts`` (sorted, unique), ``ranks_per_host`` (host → number of ranks), ``rank_hosts`` (the host
        of each rank, in rank order), ``device`` (rank 0's device record: type, name, GPUs per host,
        CUDA/cuDNN/NCCL versions where present) with ``precision`` and ``channels_last``, and
        ``device_types`` (every rank's device type, sorted, unique).
    """
    mine = (socket.gethostname(), engine.device_info())
    gathered = engine.allgather_object(mine)
    rank_hosts = [host for host, _ in gathered]
    device = dict(gathered[0][1])
    return {"hosts": sorted(set(rank_hosts)), "ranks_per_host": {h: rank_hosts.count(h) for h in sorted(set(rank_hosts))},
            "rank_hosts": rank_hosts, "device": device, "precision": device.pop("precision", "fp32"),
            "channels_last": device.pop("channels_last", False),
            "device_types": sorted({info.get("type", "cpu") for _, info in gathered})}
