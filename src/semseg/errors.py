"""One error type for problems the user can fix (bad config, data or checkpoint).

Entry points print these as a single line instead of a traceback.
"""


class SemsegError(Exception):
    """A problem with the user's input, with a message that says how to fix it."""


MAX_LISTED = 5  # files or names a message shows before "and N more"


def listed(items, more: int = 0) -> str:
    """The first few items and how many more there are, for messages that name files or values."""
    items = list(items)
    shown = ", ".join(str(item) for item in items[:MAX_LISTED])
    extra = len(items) - MAX_LISTED + more
    return shown + (f" (and {extra} more)" if extra > 0 else "")
