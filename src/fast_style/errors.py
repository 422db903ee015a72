"""Errors shown to a person as one actionable line, never as a traceback."""

import contextlib
import sys


class FastStyleError(Exception):
    """Something the user can fix: the message says what went wrong and how to fix it."""


@contextlib.contextmanager
def exit_on_user_error():
    """Turn errors a person can act on into one line on stderr and exit status 2."""
    user_errors: tuple[type[Exception], ...] = (FastStyleError,)
    if "lightning" in sys.modules:  # Lightning's own "wrong device/precision" messages are one line
        # too; inference never imports Lightning, and must not pay seconds to do so here.
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        user_errors += (MisconfigurationException,)
    try:
        yield
    except user_errors as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
