"""Finding a style image: explicit path, $FAST_STYLE_DATA/styles, the cache, then a download."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

from fast_style.errors import FastStyleError
from fast_style.loss_net import cache_dir
from fast_style.runs import cache_lock


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, sha256: str | None, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.part")
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(tmp, "wb") as out:
            out.write(response.read())
        if sha256 and sha256_of(tmp) != sha256:
            raise FastStyleError(f"download of {url} does not match its sha256 {sha256}; "
                                 "the file changed upstream: pass style.image=PATH instead")
        os.replace(tmp, dest)
    except OSError as e:
        raise FastStyleError(f"cannot download {url} ({e}); set FAST_STYLE_DATA to a folder "
                             "holding styles/ or pass style.image=PATH") from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def resolve_style_image(name: str, image: str | None = None, file: str | None = None,
                        url: str | None = None, sha256: str | None = None) -> Path:
    """The path of a style's image, in DESIGN.md's order; a clear error when there is none."""
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
        # One process downloads; the others (DDP ranks, parallel sweep jobs) wait, then read it.
        with cache_lock(cached):
            return cached if cached.is_file() else _download(url, sha256, cached)
    raise FastStyleError(f"style image for {name!r} not found (looked in {', '.join(searched)}); "
                         "set FAST_STYLE_DATA to the folder holding styles/ or pass style.image=PATH")
