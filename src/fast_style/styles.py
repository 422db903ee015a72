"""Finding a style image: explicit path, $FAST_STYLE_DATA/styles, the cache, then a download."""

from __future__ import annotations

import os
from pathlib import Path

from fast_style.datasets.download import DownloadError, download_file, sha256_of
from fast_style.errors import FastStyleError
from fast_style.loss_net import cache_dir

__all__ = ["resolve_style_image", "sha256_of"]


def resolve_style_image(name: str, image: str | None = None, file: str | None = None,
                        url: str | None = None, sha256: str | None = None) -> Path:
    """The path of a style's image; a clear error when there is none.

    In order: ``image`` (style.image), ``$FAST_STYLE_DATA/styles/<file>``, the cache, a download
    of ``url`` into the cache (checked against ``sha256``).
    """
    if image:
        path = Path(image).expanduser()
        if not path.is_file():
            raise FastStyleError(f"style image {path} not found (style.image)")
        return path
    if not file:
        raise FastStyleError(f"style {name!r} names no image: pass style.image=PATH")
    searched = []
    if os.environ.get("FAST_STYLE_DATA"):
        candidate = Path(os.environ["FAST_STYLE_DATA"]).expanduser() / "styles" / file
        if candidate.is_file():
            return candidate
        searched.append(str(candidate))
    cached = cache_dir() / "styles" / file
    if cached.is_file():
        return cached
    searched.append(str(cached))
    if url:
        # Resumable and verified like the photos; one process downloads (a cache lock), others wait.
        try:
            return download_file(url, cached, sha256, what=f"style {name}")
        except DownloadError as e:
            raise FastStyleError(f"{e}: set FAST_STYLE_DATA to a folder holding styles/, or "
                                 f"download it by hand and pass style.image=PATH") from None
    raise FastStyleError(f"style image for {name!r} not found (looked in {', '.join(searched)}); "
                         "set FAST_STYLE_DATA to the folder holding styles/ or pass style.image=PATH")
