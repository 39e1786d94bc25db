"""The one exception type that the command line, the demo and the notebooks show as a single line."""


class UserError(Exception):
    """A problem with the user's input or setup: printed as one clear line naming the argument or file, no
    traceback. Raise it where the problem is found, with the allowed range or the command that fixes it."""
