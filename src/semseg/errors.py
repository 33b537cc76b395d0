"""One error type for problems the user can fix (bad config, data or checkpoint).

Entry points print these as a single line instead of a traceback.
"""


class SemsegError(Exception):
    """A problem with the user's input, with a message that says how to fix it."""
