"""The errors the CLI maps to exit codes: the runtime's own (one line on stderr each).

:class:`UsageError` (a user mistake, exit 2) is :class:`harness.runtime.errors.ConfigError`;
:class:`RunFailure` (a run that started and failed, exit 1) is the runtime's too.
"""

from harness.runtime.errors import ConfigError as UsageError
from harness.runtime.errors import RunFailure

__all__ = ["RunFailure", "UsageError"]
