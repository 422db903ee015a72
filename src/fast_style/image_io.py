"""Image loading and saving shared by training, inference and the scripts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from PIL import Image, ImageOps
from torchvision.transforms.v2 import functional as TF

from fast_style.errors import FastStyleError


def open_rgb(path: str | Path, min_side: int | None = None) -> Image.Image:
    """Decode a photo, apply its EXIF orientation, convert to 8-bit RGB. Raises on bad files.

    ``min_side``: the caller will shrink the photo to this short side anyway, so a JPEG may be
    decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling), never below ``min_side``. For
    12 MP phone photos trained at 256 px that is most of the decoding time saved.
    """
    with Image.open(path) as img:
        if min_side:
            img.draft("RGB", (min_side, min_side))
        img = ImageOps.exif_transpose(img)
        return img.convert("RGB")


def load_image(path: str | Path) -> Image.Image:
    """open_rgb with a one-line, actionable error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise FastStyleError(f"image not found: {path}")
    try:
        return open_rgb(path)
    except Exception as e:  # noqa: BLE001 - PIL raises many types for bad data
        raise FastStyleError(f"cannot read image {path}: {e}") from None


def resize_long_edge(img: Image.Image, size: int | None) -> Image.Image:
    """Scale so the longer side is ``size`` (None keeps the image as it is)."""
    if not size or max(img.size) == size:
        return img
    scale = size / max(img.size)
    new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(new, Image.Resampling.LANCZOS)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> (3, H, W) float32 in [0, 1]."""
    return TF.to_dtype(TF.pil_to_tensor(img), torch.float32, scale=True)


def to_pil(image: torch.Tensor) -> Image.Image:
    """(3, H, W) or (1, 3, H, W) in [0, 1] -> PIL RGB (values outside [0, 1] are clipped)."""
    if image.dim() == 4:
        image = image[0]
    pixels = image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
    return TF.to_pil_image(pixels)


def save_image(image: Image.Image | torch.Tensor, path: str | Path, **save_kwargs) -> Path:
    """Write atomically (temp file + rename): an interrupted run never leaves half an image."""
    path = Path(path)
    if isinstance(image, torch.Tensor):
        image = to_pil(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        if path.suffix.lower() in (".jpg", ".jpeg"):
            save_kwargs.setdefault("quality", 95)
        image.save(tmp, **save_kwargs)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
