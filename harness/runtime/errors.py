"""The runtime's errors; the CLI turns each into one line on stderr.

:class:`ConfigError` is a user mistake (exit 2), :class:`RunFailure` a run that started and failed
(exit 1). Library code raises these (or plain ``ValueError``), never anything of the CLI's. Messages
name configuration fields (``per_worker_batch must be >= 1, got 0``), never command-line flags; an
error lists the fields its message names in ``fields``, and the CLI writes each as its flag.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A user mistake: a bad field value, an unreadable file, an existing output directory.

    Under a launcher every rank usually reaches the same verdict and only rank 0 prints it; a
    ``local`` error depends on the host (a missing data directory) and is printed by any rank.

    Args:
        message: one line saying what is wrong and with which value, naming fields as in the config
            (``data.source``, ``max_steps``).
        local: True when the error depends on this host.
        fields: the fields the message names, the one at fault first.
    """

    def __init__(self, message: str, *, local: bool = False, fields: tuple[str, ...] = ()):
        super().__init__(message)
        self.local = local
        self.fields = tuple(fields)

    @property
    def field(self) -> str | None:
        """The field at fault, or None."""
        return self.fields[0] if self.fields else None


class RunFailure(RuntimeError):
    """A run that started failed (a peer rank died, a non-finite gradient under ``stop``).

    Args:
        message: one line.
        fields: the configuration fields the message names (as :class:`ConfigError`'s).
    """

    def __init__(self, message: str, *, fields: tuple[str, ...] = ()):
        super().__init__(message)
        self.fields = tuple(fields)
