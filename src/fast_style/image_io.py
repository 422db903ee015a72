"""Image loading and saving shared by training, inference and the scripts."""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms.v2 import functional as TF

from fast_style.errors import FastStyleError
from fast_style.safe_io import atomic_save

# Images above this many pixels are refused from their header, before any decoding: a 17 KB PNG
# can declare 144 megapixels and take 2+ GB to decode. Well above 8K (33 MP) and a 100 MP
# medium-format camera; infer.py's max_pixels= changes it.
MAX_PIXELS = 120_000_000


def check_pixels(img: Image.Image, path: str | Path, max_pixels: int | None = MAX_PIXELS) -> None:
    """Refuse ``img`` (opened, not decoded) if its header declares more than ``max_pixels``."""
    if max_pixels and img.width * img.height > max_pixels:
        raise FastStyleError(f"{path} is {img.width}x{img.height} "
                             f"({img.width * img.height / 1e6:.0f} MP), above the limit of "
                             f"{max_pixels / 1e6:.0f} MP: raise max_pixels= if it is genuine")


@contextlib.contextmanager
def _open_untrusted(path: str | Path) -> Iterator[Image.Image]:
    """Image.open without PIL's own decompression-bomb warning (check_pixels is the limit)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            yield img


def open_rgb(path: str | Path, min_side: int | None = None) -> Image.Image:
    """Decode a photo, apply its EXIF orientation, convert to 8-bit RGB. Raises on bad files.

    ``min_side``: the caller will shrink the photo to this short side anyway, so a JPEG may be
    decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling), never below ``min_side``. For
    12 MP phone photos trained at 256 px that is most of the decoding time saved.
    """
    with _open_untrusted(path) as img:
        check_pixels(img, path)
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
    """Write atomically (safe_io.atomic_write): an interrupted or failed write never leaves half
    an image, and a failed one (disk full, file-size limit) raises instead of passing as written."""
    path = Path(path)
    if isinstance(image, torch.Tensor):
        image = to_pil(image)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise FastStyleError(f"cannot write {path}: {path.suffix or 'no extension'} is not an "
                             "image format (use .jpg, .png, .webp, .tif or .bmp)")
    if fmt == "JPEG":
        save_kwargs.setdefault("quality", 95)
    # The format is named, not guessed from the temp file's name.
    return atomic_save(path, lambda f: image.save(f, format=fmt, **save_kwargs))


# ----------------------------------------------------------------------------------------------
# Photos for inference: any mode in, alpha and colour profile carried through to the output
# ----------------------------------------------------------------------------------------------

# What infer.py picks up in a folder (suffix, case-insensitive); all are read and written by PIL.
INFER_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
# Formats that keep an alpha channel when written (JPEG and BMP drop it).
ALPHA_SUFFIXES = frozenset({".png", ".webp", ".tif", ".tiff"})


@dataclass
class Photo:
    """A decoded photo: 8-bit RGB pixels, the alpha channel if it had one, its ICC profile."""

    rgb: torch.Tensor                 # (3, H, W) uint8
    alpha: torch.Tensor | None        # (H, W) uint8
    icc_profile: bytes | None


def _wide_to_8bit(img: Image.Image) -> Image.Image:
    """16-bit (I;16*, I) and float (F) grayscale to 8-bit L by scaling: PIL's own convert() clips
    everything above 255 to white."""
    pixels = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        pixels = pixels * 255.0 if pixels.max(initial=0) <= 1.0 else pixels / 257.0
    else:
        pixels = pixels / 257.0  # 0..65535 -> 0..255
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), mode="L")


def load_photo(path: str | Path, max_size: int | None = None,
               max_pixels: int | None = MAX_PIXELS) -> Photo:
    """Decode any PIL-readable photo into 8-bit RGB (+ alpha), EXIF orientation applied.

    Grayscale, palette, CMYK (through its ICC profile when it has one), 16-bit and float inputs
    are converted; alpha (RGBA, LA, PA, palette transparency) is kept separately so the output
    can carry it again. Errors are one-line FastStyleErrors.

    ``max_pixels``: refuse larger images from their header (check_pixels). ``max_size``: the
    caller scales the long side down to this anyway, so a JPEG is decoded at a reduced DCT scale
    (1/2 .. 1/8) that stays at least that large: a 100 MP JPEG for a 1024 px output never exists
    at full size in memory.
    """
    path = Path(path)
    if not path.is_file():
        raise FastStyleError(f"image not found: {path}")
    try:
        with _open_untrusted(path) as img:
            check_pixels(img, path, max_pixels)
            if max_size and max(img.size) > max_size:
                scale = max_size / max(img.size)
                img.draft(img.mode, (math.ceil(img.width * scale), math.ceil(img.height * scale)))
            img = ImageOps.exif_transpose(img)
            img.load()
            icc = img.info.get("icc_profile") or None
            has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
                img.mode == "P" and "transparency" in img.info)
            alpha = None
            if has_alpha:
                img = img.convert("RGBA")
                alpha = torch.from_numpy(np.array(img.getchannel("A")))
                img = img.convert("RGB")
            elif img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
                img = _wide_to_8bit(img).convert("RGB")
            elif img.mode == "CMYK":
                img, icc = _cmyk_to_rgb(img, icc), None
            elif img.mode != "RGB":
                img = img.convert("RGB")
            rgb = TF.pil_to_tensor(img)
    except FastStyleError:
        raise
    except Exception as e:  # noqa: BLE001 - PIL raises many types for bad data
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FastStyleError(f"cannot read image {path}: {first}") from None
    return Photo(rgb, alpha, icc)


def _cmyk_to_rgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """CMYK through its embedded profile to sRGB where littleCMS can, else PIL's naive formula."""
    if icc:
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"),
                                             outputMode="RGB")
        except Exception:  # noqa: BLE001 - a broken or unusual profile: PIL's formula below
            return img.convert("RGB")
    return img.convert("RGB")


def save_photo(photo: Photo, path: str | Path, quality: int = 95) -> list[str]:
    """Write atomically with the photo's alpha and ICC profile where the format can hold them.

    Returns warnings for a person (e.g. alpha dropped because the format has none).
    """
    path = Path(path)
    notes = []
    img = TF.to_pil_image(photo.rgb)
    if photo.alpha is not None:
        if path.suffix.lower() in ALPHA_SUFFIXES:
            img.putalpha(Image.fromarray(photo.alpha.numpy(), mode="L"))
        else:
            notes.append(f"{path.suffix} has no alpha channel: transparency dropped "
                         "(use format=png to keep it)")
    kwargs: dict = {}
    if photo.icc_profile:
        kwargs["icc_profile"] = photo.icc_profile
    if path.suffix.lower() in (".jpg", ".jpeg", ".webp"):
        kwargs["quality"] = quality
    save_image(img, path, **kwargs)
    return notes
