"""Errors a user can act on. The CLI prints them as one line (`vw: error: ...`) and exits with code 2."""


class VWError(Exception):
    """Bad input or a missing resource; the message names the problem and the fix, on one line."""


class MissingModelError(VWError):
    """A model of a profile is not on this machine (no hub access here: it must be fetched elsewhere)."""
