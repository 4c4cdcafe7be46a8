"""The one user-facing error class: the CLI turns it into a single clean line."""


class BCError(Exception):
    """An error a user can act on; its message is printed as one line by the CLI."""
