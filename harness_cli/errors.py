"""The errors the CLI maps to exit codes, and the one place where config fields become flags.

:class:`UsageError` (a user mistake, exit 2) is :class:`harness.runtime.errors.ConfigError`;
:class:`RunFailure` (a run that started and failed, exit 1) is the runtime's too. Library messages
name config fields (``per_worker_batch must be >= 1``); :func:`message` writes each field an error
lists in its ``fields`` as the flag that sets it (``--per-worker-batch must be >= 1``).
"""

from __future__ import annotations

import re

from harness.runtime.errors import ConfigError as UsageError
from harness.runtime.errors import RunFailure

__all__ = ["FLAGS", "RunFailure", "UsageError", "message"]

# Config field (RunConfig, DataConfig, the benchmarks' and experiments' configs) -> the flag that sets it.
# A field missing here is written as --name-with-dashes.
FLAGS = {
    "data.source": "--dataset", "data.layout": "--layout", "data.data_dir": "--data-dir",
    "data.train_size": "--train-size", "data.test_size": "--test-size", "preset": "--preset",
    "file": "--recipe", "world_sizes": "--world-sizes",
}


def flag(field: str) -> str:
    """The flag that sets config field ``field``."""
    return FLAGS.get(field, "--" + field.rsplit(".", 1)[-1].replace("_", "-"))


def message(exc: BaseException) -> str:
    """``exc``'s one line with every field it names (its ``fields``) written as that field's flag."""
    text = str(exc)
    for field in getattr(exc, "fields", ()):
        text = re.sub(rf"(?<![\w.-]){re.escape(field)}(?![\w-])", flag(field), text)
    return text
