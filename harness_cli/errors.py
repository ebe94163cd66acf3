"""Errors the CLI turns into one line and exit code 2."""


class UsageError(Exception):
    """A user mistake (bad flag value, unreadable file, existing output): one line, exit 2."""


class RunFailure(Exception):
    """A run that started failed (a peer rank died, a non-finite gradient under ``stop``): one line, exit 1."""
