"""Horovod's fusion threshold and cycle time: set from flags, read for records.

Horovod reads ``HOROVOD_FUSION_THRESHOLD`` (bytes) and ``HOROVOD_CYCLE_TIME`` (ms) at ``hvd.init()``;
the defaults below are Horovod 0.28.1's (``horovod/common/utils/env_parser.cc``, ``global_state.h``).
"""

from __future__ import annotations

import os

from harness.runtime.errors import ConfigError

HOROVOD_DEFAULTS = {"HOROVOD_FUSION_THRESHOLD": str(128 * 2**20), "HOROVOD_CYCLE_TIME": "1"}


def horovod_knobs() -> dict:
    """Fusion threshold (bytes) and cycle time (ms) in force: the environment, else 0.28.1's defaults."""
    knobs = {name: os.environ.get(name, default) for name, default in HOROVOD_DEFAULTS.items()}
    return {"fusion_threshold_bytes": int(knobs["HOROVOD_FUSION_THRESHOLD"]),
            "cycle_time_ms": float(knobs["HOROVOD_CYCLE_TIME"])}


def apply_horovod_knobs(*, fusion_threshold_mb: float | None = None, cycle_time_ms: float | None = None) -> None:
    """Set ``HOROVOD_FUSION_THRESHOLD``/``HOROVOD_CYCLE_TIME`` for this process (before ``hvd.init()``).

    Args:
        fusion_threshold_mb: MiB (0 disables fusion); None leaves it alone.
        cycle_time_ms: milliseconds; None leaves it alone.

    Raises:
        ConfigError: a negative value.
    """
    if fusion_threshold_mb is not None:
        if fusion_threshold_mb < 0:
            raise ConfigError(f"fusion_threshold_mb must be >= 0, got {fusion_threshold_mb}",
                              fields=("fusion_threshold_mb",))
        os.environ["HOROVOD_FUSION_THRESHOLD"] = str(int(fusion_threshold_mb * 2**20))
    if cycle_time_ms is not None:
        if cycle_time_ms < 0:
            raise ConfigError(f"cycle_time_ms must be >= 0, got {cycle_time_ms}", fields=("cycle_time_ms",))
        os.environ["HOROVOD_CYCLE_TIME"] = str(cycle_time_ms)
