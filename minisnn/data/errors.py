"""The one exception data loaders raise: its message is a complete, user-facing sentence."""


class DataError(Exception):
    """Missing, corrupt or unreadable dataset files (or no way to download them)."""
