"""Errors shown to a person as one actionable line, never as a traceback."""

import contextlib
import signal
import sys
import threading


class FastStyleError(Exception):
    """Something the user can fix: the message says what went wrong and how to fix it."""


class Terminated(BaseException):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that ``finally`` blocks run (temp files
    of atomic writes are removed) instead of the process vanishing mid-write."""


def _raise_terminated(signum, frame):
    raise Terminated


@contextlib.contextmanager
def exit_on_user_error():
    """Turn errors a person can act on into one line on stderr and exit status 2; Ctrl-C and
    SIGTERM into one line and the shell's status for them (130, 143)."""
    user_errors: tuple[type[Exception], ...] = (FastStyleError,)
    if "lightning" in sys.modules:  # Lightning's own "wrong device/precision" messages are one line
        # too; inference never imports Lightning, and must not pay seconds to do so here.
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        user_errors += (MisconfigurationException,)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main else None
    try:
        yield
    except user_errors as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("\ninterrupted (Ctrl-C): files being written were discarded, finished ones kept",
              file=sys.stderr)
        raise SystemExit(128 + signal.SIGINT) from None
    except Terminated:
        print("stopped by SIGTERM: files being written were discarded, finished ones kept",
              file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
