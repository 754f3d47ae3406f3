"""The exceptions that reach the user as a sentence, never as a traceback."""
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UserError(Exception):
    """A problem with the user's input or environment.

    The message is one sentence a no-code user can act on: what is wrong, which file
    (and row or field), and what to do about it. Control characters that a message quotes
    from the user's files (a newline inside a CSV cell, say) are shown escaped (as \\n), so
    the message stays on one line.
    """

    def __init__(self, message=""):
        message = str(message)
        super().__init__(_CONTROL.sub(lambda m: repr(m.group())[1:-1], message))


class InterruptedAfterWriting(KeyboardInterrupt):
    """A Ctrl-C that arrived while files were being written, raised once they all were (output.py)."""


def first_line(error):
    """The first line of an exception's message (its type's name when it has none), to quote in a sentence."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
