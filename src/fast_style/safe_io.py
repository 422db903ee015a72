"""Files we write, and files we read without trusting them.

Writing (git's and SQLite's promise: a file is either the old one or the whole new one):
``atomic_write`` creates an exclusive new temp file *in the destination folder* (never through a
symlink that someone placed there, never in $TMPDIR, from where a "rename" across filesystems is
a copy that a crash can cut short), writes, flushes and fsyncs it, gives it the permissions the
umask asks for, and renames it over the target. Any error or signal on the way removes the temp
file and surfaces as one line. A SIGKILL cannot be caught: its temp file stays, hidden
(``.<name>.<random>.tmp``), and ``remove_stale_temps`` clears it the next time the folder's owner
(the run holding its lock) starts.

Reading: ``load_torch_file`` is the one way the project reads a PyTorch file: local paths only,
``weights_only=True`` (no code runs, whatever the pickle asks for), one-line errors.

``RunLock``: one training run per checkpoint folder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pickle
import re
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from fast_style.errors import FastStyleError

TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back (single-threaded at this point
    # in every caller that matters; a racing thread would see the same value anyway).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX: a rename is recorded in the folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems (tmpfs on old kernels, network mounts) refuse: not fatal
        pass
    finally:
        os.close(fd)


def _io_error(path: Path, e: OSError) -> FastStyleError:
    reason = e.strerror or str(e)
    hint = {errno.ENOSPC: "free some disk space", errno.EDQUOT: "free some disk space",
            errno.EFBIG: "the file size limit (ulimit -f) is too small",
            errno.EACCES: "check the folder's permissions",
            errno.EROFS: "the filesystem is read-only"}.get(e.errno, "")
    return FastStyleError(f"cannot write {path}: {reason}" + (f" ({hint})" if hint else ""))


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[IO[bytes]]:
    """``with atomic_write(p) as f: f.write(...)``: ``p`` is replaced only if the block succeeds.

    The target's folder is created. An existing symlink at ``path`` is replaced by the file, not
    followed (rename replaces the link itself), so a planted link cannot redirect the write.
    """
    with atomic_path(path, keep_suffix=False) as tmp, open(tmp, "wb") as f:
        yield f


def atomic_save(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """``write(f)`` into an atomic_write of ``path``: for savers that take a file object
    (torch.save, PIL's Image.save with format=, onnx.save)."""
    with atomic_write(path) as f:
        write(f)
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: str | Path, keep_suffix: bool = True) -> Iterator[Path]:
    """A fresh temp path beside ``path`` for the block to write; then fsynced, given the umask's
    permissions and renamed over ``path`` (removed on any error or signal). For writers that
    insist on a file name, ``keep_suffix`` ends it in the target's suffix (PyAV picks the
    container from it).

    O_CREAT | O_EXCL | O_NOFOLLOW under a fresh random name, so it never opens an existing file
    or link; mode 0600 until the data is complete. The name is chosen before the file exists and
    the file is made inside the ``try``: a signal that lands the moment the file appears (Ctrl-C
    as the first output shows up) still removes it, which mkstemp's return leaves a gap for.
    """
    path = Path(path)
    suffix = TEMP_SUFFIX + (path.suffix if keep_suffix else "")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _io_error(path, e) from None
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}{suffix}"
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as e:
        # A file already under this 64-bit random name is not ours to remove.
        if not (isinstance(e, FileExistsError) and e.filename == str(tmp)):
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _io_error(path, e) from None
        raise
    _fsync_folder(path.parent)


def save_torch_file(path: str | Path, obj) -> Path:
    """torch.save, atomically. Serialised in memory first (as Lightning's own save does): torch's
    zip writer turns a failed write (disk full, file-size limit) into an opaque RuntimeError,
    while writing the bytes ourselves gives the OSError that says what to fix."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_save(path, lambda f: f.write(buffer.getbuffer()))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_save(path, lambda f: f.write(text.encode("utf-8")))


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Remove temp files that atomic_write left in ``folder`` when its process was SIGKILLed.

    Only safe while nothing else writes there: training calls it holding the folder's RunLock.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(f".*{TEMP_SUFFIX}*")
             if re.fullmatch(rf"\..+\.[^.]+{re.escape(TEMP_SUFFIX)}(\.\w+)?", p.name)
             and p.is_file() and not p.is_symlink()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


# ----------------------------------------------------------------------------------------------
# Reading PyTorch files we did not necessarily write
# ----------------------------------------------------------------------------------------------

def is_url(value: str | os.PathLike) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", str(value)))


def _refused_global(message: str) -> str | None:
    """The class a weights_only load refused, from torch's message (its wording varies)."""
    for pattern in (r"unsupported GLOBAL ([\w.]+)", r"Unsupported global: GLOBAL ([\w.]+)",
                    r"GLOBAL ([\w.]+) was not an allowed"):
        match = re.search(pattern, message, re.IGNORECASE)
        if match:
            return f"the class {match.group(1)}"
    return None


def load_torch_file(path: str | Path, what: str = "checkpoint",
                    hint: str = "pass a .ckpt or .pth written by train.py", mmap: bool = False):
    """``torch.load`` of a local file with ``weights_only=True``: tensors and plain values only.

    A URL is refused (download it and pass the file: nothing is fetched and unpickled behind
    the user's back). Missing, truncated, foreign and code-carrying files are one-line
    FastStyleErrors naming what was wrong.
    """
    import torch  # here: fast_style's light modules import this one

    if is_url(path):
        raise FastStyleError(f"{what} {path} is a URL: download it yourself and pass the local "
                             "file (files are only ever loaded from disk, as weights)")
    path = Path(path)
    if not path.is_file():
        raise FastStyleError(f"{what} {path} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        refused = _refused_global(str(e))
        if refused:
            raise FastStyleError(f"{path} holds pickled objects that safe (weights_only) loading "
                                 f"refuses ({refused}); {hint}") from None
        raise FastStyleError(f"{path} is not a readable {what} (corrupt, or not a PyTorch file); "
                             f"{hint}") from None
    except Exception as e:  # noqa: BLE001 - truncated zip, not a torch file at all, ...
        first = str(e).splitlines()[0] if str(e) else ""
        raise FastStyleError(f"{path} is not a readable {what} ({type(e).__name__}: {first}); "
                             f"{hint}") from None


# ----------------------------------------------------------------------------------------------
# One run per checkpoint folder
# ----------------------------------------------------------------------------------------------

class RunLock:
    """An exclusive lock on ``<folder>/.run.lock`` for the life of a training run.

    ``fcntl.flock`` on the file, which the kernel releases when the holder dies however it dies
    (SIGKILL, power loss of a network client aside), plus the holder's pid inside so the refusal
    can name it. A lock file whose lock is free was left by a dead run: it is taken over, with a
    note. The file is removed on release; a taker checks, after locking, that the path still
    names the file it locked (else a releaser removed it under it) and starts over.
    """

    NAME = ".run.lock"

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / self.NAME
        self._fd: int | None = None
        self._made_folder = False

    def acquire(self, say: Callable[[str], None] | None = None) -> RunLock:
        say = say or (lambda line: print(line, file=sys.stderr))
        self._made_folder = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise FastStyleError(
                    f"another training run (pid {holder}) is using {self.folder}: wait for it "
                    "to finish, stop it, or train elsewhere with ckpt_dir=DIR") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path, follow_symlinks=False))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # removed by a run that just finished: lock the new file
        previous = os.read(fd, 64).decode(errors="replace").strip()
        if previous:
            say(f"note: took over the lock of an earlier run (pid {previous}) on {self.folder} "
                "that is no longer running")
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)  # closing drops the flock
        self._fd = None
        if self._made_folder:  # a run that failed to start leaves no empty folder behind
            with contextlib.suppress(OSError):
                self.folder.rmdir()


@contextlib.contextmanager
def run_lock(folder: str | Path, enabled: bool = True) -> Iterator[None]:
    """Hold ``folder``'s RunLock for the block (``enabled=False``: do nothing, e.g. on DDP ranks
    other than 0, whose rank 0 holds it)."""
    if not enabled:
        yield
        return
    lock = RunLock(folder).acquire()
    try:
        yield
    finally:
        lock.release()
