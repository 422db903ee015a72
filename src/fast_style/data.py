"""Content photos for training: any folder tree of images, as a LightningDataModule."""

from __future__ import annotations

import multiprocessing
import os
import random
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms import v2

from fast_style.datasets.photos import locate_photos
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


def require_one_decodable(paths: list[Path], root) -> None:
    """Fail now, in one line, if not a single photo decodes (all truncated, say): otherwise the
    first batch would fail inside a loader worker, as a traceback wall. Decoding stops at the
    first good photo, so a healthy folder costs one decode."""
    if not any(_decodes(path) for path in paths):
        raise FastStyleError(f"none of the {len(paths)} photo(s) under {root} can be decoded "
                             "(truncated or corrupt files): pass data.root=FOLDER with real photos")


def _decodes(path: Path) -> bool:
    try:
        open_rgb(path, 64)
    except Exception:  # noqa: BLE001 - any undecodable file counts the same
        return False
    return True


class PhotoDataset(Dataset):
    """Decoded, transformed photos. A file that fails to decode is replaced by the next one.

    An index may come as ``(index, crop_seed)`` (from EpochSampler): the random crop is then drawn
    from that seed, so a sample is the same whichever process or worker loads it, and when.
    """

    def __init__(self, paths: list[Path], transform, min_side: int | None = None):
        self.paths = paths
        self.transform = transform
        self.min_side = min_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int | tuple[int, int]) -> torch.Tensor:
        index, crop_seed = index if isinstance(index, tuple) else (index, None)
        for offset in range(len(self.paths)):
            path = self.paths[(index + offset) % len(self.paths)]
            try:
                if crop_seed is None:
                    return self.transform(open_rgb(path, self.min_side))
                with torch.random.fork_rng(devices=[]):  # leaves the caller's RNG untouched
                    torch.manual_seed(crop_seed)
                    return self.transform(open_rgb(path, self.min_side))
            except Exception as e:  # noqa: BLE001
                warnings.warn(f"skipping unreadable photo {path}: {e}", stacklevel=2)
        raise FastStyleError("none of the photos could be decoded")


def train_transform(size: int, load_size: int | None = None) -> v2.Compose:
    # Resize the short side (to load_size, else to the crop's size) then crop: no squashing of
    # the photo's aspect ratio. A load_size above the crop keeps the photo's scale nearer to the
    # one the network will later see, at the cost of each crop showing less of the scene.
    return v2.Compose([
        v2.PILToTensor(),
        v2.Resize(load_size or size, antialias=True),
        v2.RandomCrop(size),
        v2.ToDtype(torch.float32, scale=True),
    ])


def eval_transform(size: int, load_size: int | None = None) -> v2.Compose:
    # The photo's centre at the scale the training crops were cut at.
    return v2.Compose([
        v2.PILToTensor(),
        v2.Resize(load_size or size, antialias=True),
        v2.CenterCrop(size),
        v2.ToDtype(torch.float32, scale=True),
    ])


class EpochSampler(Sampler):
    """This process's share of a fresh shuffle per epoch: a pure function of (seed, epoch).

    Each epoch permutes all photos with ``default_rng([seed, epoch])``, cuts the permutation to a
    multiple of ``world_size`` (every DDP rank must take the same number of steps) and gives rank r
    every world_size-th photo from position r: ranks never share a photo within an epoch. Items are
    ``(index, crop_seed)`` (see PhotoDataset). ``start`` skips this rank's first samples in the
    first epoch iterated: a run resumed mid-epoch continues where it was interrupted.

    ``len`` is always a whole epoch: Lightning counts the batches done before an interruption
    itself and ends the resumed epoch after the remaining ones.
    """

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1,
                 epoch: int = 0, start: int = 0):
        self.size, self.seed = size, seed
        self.rank, self.world_size = rank, world_size
        self.per_rank = size // world_size
        self.epoch, self.start = epoch, start

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this at every epoch start."""
        if epoch != self.epoch:
            self.epoch, self.start = epoch, 0

    def __len__(self) -> int:
        return self.per_rank

    def indices(self, epoch: int) -> list[tuple[int, int]]:
        """This rank's (photo index, crop seed) pairs of ``epoch``, in order."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.size)[: self.per_rank * self.world_size]
        crop_seeds = rng.integers(0, 2**31, size=len(order))
        mine = slice(self.rank, len(order), self.world_size)
        return [(int(i), int(c)) for i, c in zip(order[mine], crop_seeds[mine])]

    def __iter__(self):
        epoch, start = self.epoch, self.start
        self.start = 0  # the skip applies once: to the epoch being resumed
        yield from self.indices(epoch)[start:]


def auto_workers(processes: int = 1) -> int:
    """data.num_workers=auto: half the cores this process may use, shared by the ``processes``
    training on this machine (DDP), from 2 to 8 each. A 2-core CPU trains far slower than two
    workers decode (419 photos/s against 1.6 used, benchmarks/README.md); on a GPU machine one
    worker decodes ~110 photos/s (H200 machine, 16 cores: 1,771 with 16 workers) and a batch-4
    step there eats 217 a second (benchmarks/gpu.md)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(8, max(2, (cores or 2) // 2 // max(1, processes)))


def worker_start_method() -> str | None:
    """How loader workers start: Python's default, except inside a joblib worker.

    A joblib worker (hydra/launcher=joblib) runs with loky's own start method as the process-wide
    default, and DataLoader workers started with it fail ("Got pickle error when attempting to
    start a worker Process", then "'Process' object has no attribute 'env'"). There the platform's
    standard method is used instead; everywhere else None keeps the default.
    """
    method = multiprocessing.get_start_method(allow_none=True)
    if method in (None, "fork", "spawn", "forkserver"):
        return None
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


class PhotoDataModule(L.LightningDataModule):
    """Training photos plus a fixed handful held out for validation and sample grids.

    The training order is EpochSampler's: seeded, sharded over DDP ranks, and resumable. Its
    position (epoch, samples done in it) goes into every checkpoint through ``state_dict``.
    """

    def __init__(self, root: str | None = None, image_size: int = 256, batch_size: int = 4,
                 num_workers: int | str = "auto", val_count: int = 8, seed: int = 0,
                 folder: str | None = None, url: str | None = None, sha256: str | None = None,
                 download: bool = True, archive_folders: list[str] | tuple[str, ...] = (),
                 load_size: int | None = None):
        super().__init__()
        # Where the photos are: ``root``, else ``folder`` under $FAST_STYLE_DATA or the cache, else
        # downloaded from ``url`` (fast_style.datasets.photos). Resolved by setup().
        self.source = {"root": root, "folder": folder, "url": url, "sha256": sha256,
                       "download": download, "archive_folders": tuple(archive_folders or ())}
        self.root: Path | None = None
        self.image_size = image_size
        # The short side the crops are cut at (null: the crop's own). Never below the crop:
        # train.py refuses that (checks.py); the benchmark scripts, which change only
        # data.image_size, get crops of the photo shrunk to the crop's size.
        self.load_size = max(load_size or image_size, image_size)
        self.batch_size = batch_size
        self.num_workers = auto_workers() if num_workers == "auto" else num_workers
        self.val_count = val_count
        self.seed = seed
        self.train_paths: list[Path] = []
        self.val_paths: list[Path] = []
        self.sampler: EpochSampler | None = None
        self._resume_at = (0, 0)  # (epoch, samples of it done on this rank), from a checkpoint

    def prepare_data(self) -> None:
        """Downloads the photos if they are nowhere yet (Lightning calls this on one process)."""
        locate_photos(**self.source)

    def setup(self, stage: str | None = None) -> None:
        if self.train_paths:
            return
        # Every process resolves the folder itself (a download runs once, under a cache lock).
        self.root = locate_photos(**self.source)
        photos = drop_unreadable(find_photos(self.root))
        require_one_decodable(photos, self.root)
        if len(photos) <= self.val_count:
            raise FastStyleError(f"{len(photos)} readable photo(s) under {self.root} but "
                                 f"data.val_count={self.val_count} are held out: add photos or "
                                 "lower data.val_count")
        shuffled = photos.copy()
        random.Random(SPLIT_SEED).shuffle(shuffled)
        self.val_paths = sorted(shuffled[: self.val_count])
        self.train_paths = sorted(shuffled[self.val_count:])

    def _loader(self, dataset: Dataset, drop_last: bool, sampler: Sampler | None = None
                ) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler,
                          drop_last=drop_last, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available(),
                          multiprocessing_context=worker_start_method() if self.num_workers else None)

    def train_dataloader(self) -> DataLoader:
        dataset = PhotoDataset(self.train_paths, train_transform(self.image_size, self.load_size),
                               self.load_size)  # decoded no smaller than that
        # Under DDP every process shards the photos itself (train.py turns Lightning's
        # DistributedSampler off): the order stays ours, seeded and resumable.
        trainer = self.trainer
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        if len(dataset) < world_size:
            raise FastStyleError(f"{len(dataset)} training photo(s) for {world_size} processes: "
                                 "add photos or use fewer devices")
        epoch, start = self._resume_at
        self.sampler = EpochSampler(len(dataset), self.seed, rank, world_size, epoch, start)
        # drop_last keeps every step the same shape: steady timing and no tiny final batch.
        return self._loader(dataset, drop_last=self.sampler.per_rank >= self.batch_size,
                            sampler=self.sampler)

    def state_dict(self) -> dict:
        """The data position, which Lightning saves in every checkpoint.

        Derived from the optimizer steps taken (each consumed one batch per rank), not from what
        the loader has prefetched: a checkpoint written after step N resumes at batch N + 1, and
        a step interrupted half-way is redone.
        """
        trainer = self.trainer
        if trainer is None or self.sampler is None or not trainer.num_training_batches:
            return {}
        batches = trainer.global_step * trainer.accumulate_grad_batches
        epoch, batch = divmod(batches, int(trainer.num_training_batches))
        # image_size, load_size and batch_size let a resume see that it was asked for other settings.
        return {"seed": self.seed, "epoch": epoch, "samples": batch * self.batch_size,
                "world_size": self.sampler.world_size, "image_size": self.image_size,
                "load_size": self.load_size, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        # The resumed run continues the interrupted one's data order, whatever seed= says now.
        self.seed = state["seed"]
        self._resume_at = (state["epoch"], state["samples"])
        world_size = self.trainer.world_size if self.trainer else 1
        if state.get("world_size", world_size) != world_size:
            warnings.warn(f"resuming on {world_size} processes instead of {state['world_size']}: "
                          "the interrupted epoch goes on over other shards, so some of its photos "
                          "are skipped or seen twice", stacklevel=2)

    def val_dataloader(self) -> DataLoader:
        # Not sharded: every rank scores all held-out photos, so synced val metrics are exact.
        return self._loader(self.val_dataset(), drop_last=False)

    def val_dataset(self) -> PhotoDataset:
        return PhotoDataset(self.val_paths, eval_transform(self.image_size, self.load_size),
                            self.load_size)
