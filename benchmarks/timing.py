"""The one timing loop of the benchmarks: wall-clock seconds of repeated calls."""

from __future__ import annotations

import time
from collections.abc import Callable


def time_calls(call: Callable[[], object], count: int, warmup: int = 0) -> list[float]:
    """Call ``call`` ``warmup`` times untimed, then ``count`` times, each timed alone.

    Returns:
        ``count`` durations in seconds (``time.perf_counter``), in call order.
    """
    for _ in range(warmup):
        call()
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times
