"""A user's module that fails at import."""

raise ImportError("no module named 'mylib'")
