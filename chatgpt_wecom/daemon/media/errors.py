"""The one error of media handling."""


class MediaError(Exception):
    """Media could not be used; ``str(err)`` is short, holds no user data, and is safe to log or show."""
