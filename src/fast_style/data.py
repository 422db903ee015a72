"""Content photos for training: any folder tree of images, as a LightningDataModule."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import lightning as L
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from fast_style.errors import FastStyleError
from fast_style.image_io import open_rgb

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
# The held-out split must not move when the training seed changes, so runs stay comparable.
SPLIT_SEED = 0


def find_photos(root: str | Path) -> list[Path]:
    """Every image file below ``root`` (recursive, suffix case-insensitive), sorted."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FastStyleError(f"photo folder {root} does not exist: pass data.root=FOLDER "
                             "(any folder tree of jpg/png/webp/bmp photos, e.g. COCO train2014)")
    photos = sorted(p for p in root.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    if not photos:
        raise FastStyleError(f"no photos (jpg, jpeg, png, webp, bmp) found under {root}: "
                             "pass data.root=FOLDER")
    return photos


def drop_unreadable(paths: list[Path]) -> list[Path]:
    """Keep the files whose headers PIL can parse; warn once, naming the others and their count.

    Reading headers is cheap (no pixel decoding). Files that are truncated further in are caught
    later, when a worker decodes them (see PhotoDataset).
    """
    good, bad = [], []
    for path in paths:
        try:
            with Image.open(path):
                good.append(path)
        except Exception:  # noqa: BLE001 - any undecodable file is skipped the same way
            bad.append(path)
    if bad:
        names = ", ".join(str(p) for p in bad[:10]) + (" ..." if len(bad) > 10 else "")
        warnings.warn(f"skipping {len(bad)} unreadable photo(s) of {len(paths)}: {names}",
                      stacklevel=2)
    return good


class PhotoDataset(Dataset):
    """Decoded, transformed photos. A file that fails to decode is replaced by the next one."""

    def __init__(self, paths: list[Path], transform, min_side: int | None = None):
        self.paths = paths
        self.transform = transform
        self.min_side = min_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        for offset in range(len(self.paths)):
            path = self.paths[(index + offset) % len(self.paths)]
            try:
                return self.transform(open_rgb(path, self.min_side))
            except Exception as e:  # noqa: BLE001
                warnings.warn(f"skipping unreadable photo {path}: {e}", stacklevel=2)
        raise FastStyleError("none of the photos could be decoded")


def train_transform(size: int) -> v2.Compose:
    # Resize the short side then crop: no squashing of the photo's aspect ratio.
    return v2.Compose([
        v2.PILToTensor(),
        v2.Resize(size, antialias=True),
        v2.RandomCrop(size),
        v2.ToDtype(torch.float32, scale=True),
    ])


def eval_transform(size: int) -> v2.Compose:
    return v2.Compose([
        v2.PILToTensor(),
        v2.Resize(size, antialias=True),
        v2.CenterCrop(size),
        v2.ToDtype(torch.float32, scale=True),
    ])


class PhotoDataModule(L.LightningDataModule):
    """Training photos plus a fixed handful held out for validation and sample grids."""

    def __init__(self, root: str, image_size: int = 256, batch_size: int = 4,
                 num_workers: int = 2, val_count: int = 8):
        super().__init__()
        self.root = root
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_count = val_count
        self.train_paths: list[Path] = []
        self.val_paths: list[Path] = []

    def setup(self, stage: str | None = None) -> None:
        if self.train_paths:
            return
        photos = drop_unreadable(find_photos(self.root))
        if len(photos) <= self.val_count:
            raise FastStyleError(f"{len(photos)} readable photo(s) under {self.root} but "
                                 f"data.val_count={self.val_count} are held out: add photos or "
                                 "lower data.val_count")
        shuffled = photos.copy()
        random.Random(SPLIT_SEED).shuffle(shuffled)
        self.val_paths = sorted(shuffled[: self.val_count])
        self.train_paths = sorted(shuffled[self.val_count:])

    def _loader(self, dataset: Dataset, shuffle: bool, drop_last: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle,
                          drop_last=drop_last, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available())

    def train_dataloader(self) -> DataLoader:
        dataset = PhotoDataset(self.train_paths, train_transform(self.image_size), self.image_size)
        # drop_last keeps every step the same shape: steady timing and no tiny final batch.
        return self._loader(dataset, shuffle=True, drop_last=len(dataset) >= self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset(), shuffle=False, drop_last=False)

    def val_dataset(self) -> PhotoDataset:
        return PhotoDataset(self.val_paths, eval_transform(self.image_size), self.image_size)
