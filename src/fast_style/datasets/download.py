"""One file over HTTP(S): resumable, retried, verified, and never taken for complete when cut short.

Why not torchvision.datasets.utils.download_url: it restarts from zero after any failure (no
Range requests) and writes straight to the destination name, so a download cut at 12 of COCO's
13 GB is lost, and a cut file looks like a finished one. Here the bytes go to ``<dest>.part``;
after a cut, the next attempt (or the next run) asks the server for the rest (``Range:
bytes=N-``); the file takes its real name only once it has all its bytes and, when a sha256 is
known, the right digest.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from fast_style.errors import FastStyleError
from fast_style.runs import cache_lock

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# A server that is down (connection refused, no route, DNS failure) is retried this often, with
# 0.5 s, 1 s, 2 s pauses: a person offline hears so within seconds. An attempt that received bytes
# does not count, so a flaky connection that keeps making progress keeps going (up to MAX_ATTEMPTS).
RETRIES = 3
MAX_ATTEMPTS = 50
TIMEOUT_S = 30


class _Retry(Exception):
    """A failure worth another attempt (connection cut, timeout, server error)."""


class DownloadError(FastStyleError):
    """The download failed for good; the message names the URL and the reason."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def human_size(count: int | None) -> str:
    if count is None:
        return "size unknown"
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return ""


def download_file(url: str, dest: Path, sha256: str | None = None, what: str | None = None) -> Path:
    """``dest``, downloaded from ``url`` unless it is already there.

    One process downloads (``cache_lock``); others wait, then find the file. ``what`` names the
    download in the announcement. Raises DownloadError (one line) when it cannot complete.
    """
    dest = Path(dest)
    with cache_lock(dest):
        if dest.is_file():
            return dest
        part = dest.with_name(f"{dest.name}.part")
        failures = attempts = 0
        while True:
            attempts += 1
            try:
                _fetch(url, part, what)
                break
            except _Retry as e:
                received = getattr(e, "received", 0)
                failures = 0 if received else failures + 1
                if failures > RETRIES or attempts >= MAX_ATTEMPTS:
                    raise DownloadError(f"cannot download {url} ({e})") from None
                pause = 0.5 * 2 ** max(failures - 1, 0)
                # Said only once bytes have come: an unreachable server fails quietly and fast.
                (log.warning if part.exists() else log.debug)(
                    "download of %s interrupted (%s); %s in %.1f s", url, e,
                    "resuming" if part.exists() else "retrying", pause)
                time.sleep(pause)
        if sha256 and (digest := sha256_of(part)) != sha256.lower():
            part.unlink()
            raise DownloadError(f"{url} has sha256 {digest}, not the expected {sha256}: the file "
                                "changed upstream or was damaged on the way (deleted it)")
        os.replace(part, dest)
        return dest


def _fetch(url: str, part: Path, what: str | None) -> int:
    """Appends the rest of ``url`` to ``part``. Returns the bytes received; raises _Retry."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    received = 0
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the part is as long as (or longer than) the file: start over
            part.unlink()
            raise _Retry("the partial download did not fit the file; starting over") from e
        if e.code >= 500 or e.code == 429:
            raise _Retry(f"HTTP {e.code}") from e
        raise DownloadError(f"cannot download {url} (HTTP {e.code} {e.reason})") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        if isinstance(getattr(e, "reason", None), FileNotFoundError):  # a file:// URL: no retry
            raise DownloadError(f"cannot download {url} ({e.reason})") from None
        raise _Retry(str(getattr(e, "reason", e))) from e
    with response:
        try:
            total = _total_size(response, have)
        except _Retry:
            part.unlink()
            raise
        if response.status != 206:  # the server sent the whole file (no Range support): restart
            have = 0
        action = f"resuming at {human_size(have)} of" if have else "downloading"
        log.info("%s%s %s (%s) into %s", f"{what}: " if what else "", action, url,
                 human_size(total), part.parent)
        free = shutil.disk_usage(part.parent).free
        if total is not None and free < total - have:
            raise DownloadError(f"{url} needs {human_size(total - have)} more but {part.parent} "
                                f"has {human_size(free)} free: make room or point "
                                "$FAST_STYLE_CACHE elsewhere")
        try:
            with open(part, "ab" if have else "wb") as out, tqdm(
                    total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=part.name.removesuffix(".part"), mininterval=1.0, leave=False) as bar:
                while chunk := _read(response, have + received, received):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except OSError as e:  # writing: disk full, no permission - another attempt will not help
            raise DownloadError(f"cannot write {part} ({e})") from None
    size = part.stat().st_size
    if total is not None and size != total:
        error = _Retry(f"got {human_size(size)} of {human_size(total)}")
        error.received = received
        raise error
    return received


def _read(response, position: int, received: int) -> bytes:
    """The next chunk; a connection cut or timeout becomes _Retry carrying the bytes received."""
    try:
        return response.read(CHUNK)
    except (OSError, http.client.HTTPException) as e:
        error = _Retry(f"connection lost after {human_size(position)}")
        error.received = received
        raise error from e


def _total_size(response, have: int) -> int | None:
    """The whole file's size: from Content-Range on a 206, else Content-Length (None if absent)."""
    if response.status == 206:
        match = re.match(r"bytes (\d+)-\d+/(\d+)", response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != have:
            raise _Retry("the server resumed at the wrong place; starting over")
        return int(match.group(2))
    length = response.headers.get("Content-Length")
    return int(length) if length is not None and length.isdigit() else None
