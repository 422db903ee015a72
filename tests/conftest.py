"""Shared fixtures. Data (styles/, bsds300-train/, content/) comes from $FAST_STYLE_DATA."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FAST_STYLE_DATA", "FAST_STYLE_DATA-is-unset"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "styles").is_dir():
        pytest.fail(f"test data not found at {DATA}: set FAST_STYLE_DATA to the shared data folder")
    return DATA


@pytest.fixture(scope="session")
def style_path(data_dir) -> Path:
    return data_dir / "styles" / "starry_night.jpg"


def train_config(overrides=()):
    """configs/train.yaml composed with ``overrides``, as train.py composes it (no run folder)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def write_photo(path: Path, size=(48, 40), seed=0, mode="RGB") -> Path:
    """A small random-but-smooth picture, so crops and resizes have structure to keep."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((w, h), Image.Resampling.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.convert(mode).save(path)
    return path


@pytest.fixture
def photo_folder(tmp_path) -> Path:
    """Ten small photos of mixed formats and case, nested one level."""
    root = tmp_path / "photos"
    names = ["a.jpg", "b.JPG", "c.jpeg", "d.png", "e.webp", "f.bmp", "sub/g.jpg", "sub/h.PNG",
             "sub/i.jpg", "j.jpg"]
    for i, name in enumerate(names):
        write_photo(root / name, size=(48 + i, 40 + 2 * i), seed=i)
    (root / "notes.txt").write_text("not a photo")
    return root


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """10 photos for real train.py runs: with debug=tiny (batch 2), 8 train (4 steps an epoch,
    so 8 steps cross an epoch boundary) and 2 are held out."""
    root = tmp_path_factory.mktemp("photos")
    for i in range(10):
        write_photo(root / f"p{i}.jpg", size=(96 + 4 * i, 72), seed=i)
    return root
