"""The one exception type that reaches the user as a sentence, never as a traceback."""


class UserError(Exception):
    """A problem with the user's input or environment.

    The message is one sentence a no-code user can act on: what is wrong, which file
    (and row or field), and what to do about it.
    """
