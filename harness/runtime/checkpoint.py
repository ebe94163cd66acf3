"""Checkpoints for ``harness train``.

A checkpoint is one file, ``DIR/checkpoint.pkl``, written by rank 0 atomically (a temporary file in
the same directory, flushed and fsynced, then ``os.replace``): a reader sees the old checkpoint or
the new one, never half of one. It holds the engine's state (model, optimizer buffers, LR step,
RNG) and where to continue: step, epoch, batch within the epoch, recipe, seed. On ``--resume`` rank 0
reads it and broadcasts it, so other hosts need no shared filesystem.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

CHECKPOINT = "checkpoint.pkl"
FORMAT = 1


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
