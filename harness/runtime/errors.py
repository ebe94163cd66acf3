"""The runtime's errors; the CLI turns each into one line on stderr.

:class:`ConfigError` is a user mistake (exit 2), :class:`RunFailure` a run that started and failed
(exit 1). Library code raises these (or plain ``ValueError``), never anything of the CLI's.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A user mistake: a bad flag value, an unreadable file, an existing output directory.

    Under a launcher every rank usually reaches the same verdict and only rank 0 prints it; a
    ``local`` error depends on the host (a missing data directory) and is printed by any rank.

    Args:
        message: one line saying what is wrong and with which value.
        local: True when the error depends on this host.
    """

    def __init__(self, message: str, *, local: bool = False):
        super().__init__(message)
        self.local = local


class RunFailure(RuntimeError):
    """A run that started failed (a peer rank died, a non-finite gradient under ``stop``)."""
