"""Checkpoints, failure markers and fault injection for ``harness train``.

* A checkpoint is one file, ``DIR/checkpoint.pkl``, written by rank 0 atomically (a temporary file in
  the same directory, flushed and fsynced, then ``os.replace``): a reader sees the old checkpoint or
  the new one, never half of one. It holds the engine's state (model, optimizer buffers, LR step,
  RNG) and where to continue: step, epoch, batch within the epoch, recipe, seed.
* On ``--resume`` rank 0 reads it and broadcasts it, so other hosts need no shared filesystem.
* A rank that fails writes ``DIR/failure-rank<R>.json``; rank 0 and ``harness report`` name it.
* ``HARNESS_FAULT=RANK:STEP:MODE`` (MODE ``kill``, ``raise`` or ``nan``) makes rank RANK fail at
  step STEP: for testing failure handling and resume, as a chaos tool would.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
from pathlib import Path

import numpy as np

CHECKPOINT = "checkpoint.pkl"
FORMAT = 1
FAULT_MODES = ("kill", "raise", "nan")


def save_checkpoint(path: Path, meta: dict, state: dict) -> None:
    """Write ``{"meta", "state"}`` to ``path`` atomically (temp file + fsync + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        pickle.dump({"format": FORMAT, "meta": meta, "state": state}, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> tuple[dict, dict]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        ValueError: not a harness checkpoint, or another format version.
        OSError: unreadable file.
    """
    try:
        with open(path, "rb") as f:
            payload = pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise ValueError(f"{path} is not a harness checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a harness checkpoint of format {FORMAT}")
    return payload["meta"], payload["state"]


def resume_problem(meta: dict, *, recipe: dict, backend: str, model: str, world_size: int, seed: int) -> str | None:
    """Why this run cannot continue ``meta``'s checkpoint, or None."""
    if meta["world_size"] != world_size:
        return (f"the checkpoint was written with world size {meta['world_size']}, this run has {world_size}: "
                "the global batch and shards would change")
    for name, mine in (("backend", backend), ("model", model), ("seed", seed)):
        if meta[name] != mine:
            return f"the checkpoint's {name} is {meta[name]!r}, this run's is {mine!r}"
    changed = sorted(k for k in set(recipe) | set(meta["recipe"]) if recipe.get(k) != meta["recipe"].get(k))
    if changed:
        return f"the recipe differs from the checkpoint's in {', '.join(changed)}"
    return None


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


def inject(fault: tuple[int, int, str] | None, rank: int, step: int, batch: list) -> list:
    """Apply ``fault`` if it is for this rank and step: kill the process, raise, or poison the batch."""
    if not fault or fault[0] != rank or fault[1] != step:
        return batch
    if fault[2] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault[2] == "raise":
        raise RuntimeError(f"injected failure (HARNESS_FAULT) on rank {rank} at step {step}")
    return [(np.full_like(x, np.nan), y) for x, y in batch]
