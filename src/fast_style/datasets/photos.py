"""Where the training photos are, and fetching them on first use.

Order (configs/data/*.yaml): ``data.root`` when given; ``$FAST_STYLE_DATA/<data.folder>``;
``<cache>/data/<data.folder>`` (``~/.cache/fast_style``, or ``$XDG_CACHE_HOME/fast_style``, or
``$FAST_STYLE_CACHE``); else ``data.url`` (a zip or tar.gz of photos) is downloaded and the
archive's ``data.archive_folders`` are unpacked into that cache folder, unless
``data.download=false``. The archive is deleted once unpacked (COCO's would double 13 GB).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlparse

from fast_style.datasets.archive import ArchiveError, extract_archive
from fast_style.datasets.download import DownloadError, download_file
from fast_style.errors import FastStyleError
from fast_style.loss_net import cache_dir
from fast_style.runs import cache_lock

log = logging.getLogger(__name__)


def photo_cache() -> Path:
    return cache_dir() / "data"


def locate_photos(root: str | None = None, folder: str | None = None, url: str | None = None,
                  sha256: str | None = None, download: bool = True,
                  archive_folders: list[str] | tuple[str, ...] = ()) -> Path:
    """The folder of training photos, downloading them first if needed (see the module doc)."""
    if root:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise FastStyleError(f"photo folder {path} does not exist (data.root): pass "
                                 "data.root=FOLDER (any folder tree of jpg/png/webp/bmp photos), "
                                 "or leave data.root unset to use the configured data set")
        return path
    if not folder:
        raise FastStyleError("no photos configured: pass data.root=FOLDER (any folder tree of photos)")
    looked = []
    if os.environ.get("FAST_STYLE_DATA"):
        shared = Path(os.environ["FAST_STYLE_DATA"]).expanduser() / folder
        if shared.is_dir():
            return shared
        looked.append(f"$FAST_STYLE_DATA/{folder}")
    cached = photo_cache() / folder
    if cached.is_dir():
        return cached
    looked.append(str(cached))
    where = (f"photos {folder!r} not found (looked in {', '.join(looked)}; "
             f"$FAST_STYLE_DATA is {'set' if os.environ.get('FAST_STYLE_DATA') else 'unset'})")
    elsewhere = f"set FAST_STYLE_DATA to a folder holding {folder}/, or pass data.root=FOLDER"
    if not url:
        raise FastStyleError(f"{where}: {elsewhere}")
    inside = f" ({', '.join(archive_folders)} of it)" if archive_folders else ""
    by_hand = (f"download {url} by hand and unpack it{inside} into {cached}, or run "
               "python scripts/download_data.py where there is internet")
    if not download:
        raise FastStyleError(f"{where} and data.download=false: {by_hand}; or {elsewhere}")
    # One process downloads and unpacks; others (DDP ranks, parallel sweep jobs) wait, then read.
    with cache_lock(cached):
        if cached.is_dir():
            return cached
        archive = photo_cache() / "downloads" / (Path(urlparse(url).path).name or "photos.archive")
        try:
            download_file(url, archive, sha256, what=f"photos for {folder}")
        except DownloadError as e:
            raise FastStyleError(f"{e}: {by_hand}; or {elsewhere}") from None
        try:
            extract_archive(archive, cached, archive_folders)
        except ArchiveError as e:
            archive.unlink(missing_ok=True)
            raise FastStyleError(f"{e}: deleted it; run again to download it afresh, or "
                                 f"{by_hand}") from None
        archive.unlink()
    log.info("photos for %s ready in %s", folder, cached)
    return cached
