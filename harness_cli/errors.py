"""Errors the CLI turns into one line and exit code 2."""


class UsageError(Exception):
    """A user mistake (bad flag value, unreadable file, existing output): one line, exit 2.

    Under a launcher every rank usually reaches the same verdict and only rank 0 prints it; a
    ``local`` error depends on the host (a missing data directory) and is printed by any rank.
    """

    def __init__(self, message: str, *, local: bool = False):
        super().__init__(message)
        self.local = local


class RunFailure(Exception):
    """A run that started failed (a peer rank died, a non-finite gradient under ``stop``): one line, exit 1."""
