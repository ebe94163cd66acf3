"""Errors the CLI turns into one line and exit code 2."""


class UsageError(Exception):
    """A user mistake (bad flag value, unreadable file, existing output): one line, exit 2."""
