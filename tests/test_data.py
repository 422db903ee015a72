import warnings

import pytest
import torch
from conftest import write_photo
from PIL import Image
from torchvision.transforms import v2

from fast_style.data import (
    PhotoDataModule,
    PhotoDataset,
    drop_unreadable,
    eval_transform,
    find_photos,
    train_transform,
)
from fast_style.errors import FastStyleError
from fast_style.image_io import open_rgb


def test_finds_every_format_recursively_case_insensitive(photo_folder):
    names = sorted(p.name for p in find_photos(photo_folder))
    assert names == ["a.jpg", "b.JPG", "c.jpeg", "d.png", "e.webp", "f.bmp", "g.jpg", "h.PNG",
                     "i.jpg", "j.jpg"]


def test_missing_and_empty_folders_are_one_line_errors(tmp_path):
    with pytest.raises(FastStyleError, match="data.root"):
        find_photos(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FastStyleError, match="no photos"):
        find_photos(tmp_path / "empty")


def test_unreadable_files_are_skipped_with_one_warning(photo_folder):
    (photo_folder / "broken.jpg").write_bytes(b"definitely not a jpeg")
    (photo_folder / "empty.png").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"skipping 2 unreadable photo\(s\) of 12") as record:
        good = drop_unreadable(find_photos(photo_folder))
    assert len(record) == 1 and "broken.jpg" in str(record[0].message)
    assert len(good) == 10


def test_truncated_photo_is_replaced_by_the_next(tmp_path):
    good = write_photo(tmp_path / "good.jpg", size=(64, 64))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:300])  # valid header, missing data
    dataset = PhotoDataset([truncated, good], train_transform(32))
    with pytest.warns(UserWarning, match="truncated.jpg"):
        item = dataset[0]
    assert item.shape == (3, 32, 32)


def test_exif_orientation_and_modes(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "rotated.jpg", exif=exif)
    assert open_rgb(tmp_path / "rotated.jpg").size == (20, 40)
    for mode in ("L", "P", "CMYK", "RGBA", "I;16"):
        suffix = ".jpg" if mode == "CMYK" else ".png"
        path = write_photo(tmp_path / f"{mode.replace(';', '')}{suffix}", mode=mode)
        assert open_rgb(path).mode == "RGB"


def test_datamodule_split_is_fixed_and_disjoint(photo_folder):
    dm = PhotoDataModule(str(photo_folder), image_size=32, batch_size=3, num_workers=0, val_count=2)
    dm.setup()
    assert len(dm.val_paths) == 2 and len(dm.train_paths) == 8
    assert not set(dm.val_paths) & set(dm.train_paths)
    again = PhotoDataModule(str(photo_folder), image_size=32, batch_size=3, num_workers=0,
                            val_count=2)
    again.setup()
    assert again.val_paths == dm.val_paths
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (3, 3, 32, 32) and batch.dtype == torch.float32
    assert 0 <= batch.min() and batch.max() <= 1
    assert len(dm.train_dataloader()) == 2  # drop_last: 8 photos -> two full batches of 3
    assert next(iter(dm.val_dataloader())).shape == (2, 3, 32, 32)


def test_too_few_photos_for_the_split(photo_folder):
    dm = PhotoDataModule(str(photo_folder), val_count=10, num_workers=0)
    with pytest.raises(FastStyleError, match="val_count"):
        dm.setup()


def test_training_crops_are_random_and_square(tmp_path):
    path = write_photo(tmp_path / "wide.jpg", size=(120, 60))
    dataset = PhotoDataset([path], train_transform(48))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        crops = [dataset[0] for _ in range(8)]
    assert all(c.shape == (3, 48, 48) for c in crops)
    assert any(not torch.equal(crops[0], c) for c in crops[1:])


def test_load_size_cuts_the_crop_from_the_photo_at_that_scale(tmp_path):
    path = write_photo(tmp_path / "photo.png", size=(96, 64))  # lossless: pixels compare exactly
    photo = v2.ToDtype(torch.float32, scale=True)(v2.PILToTensor()(Image.open(path)))

    def is_a_window_of_the_photo(crop):
        return any(torch.equal(crop, photo[:, y:y + 32, x:x + 32])
                   for y in range(64 - 32 + 1) for x in range(96 - 32 + 1))

    native = PhotoDataset([path], train_transform(32, load_size=64), min_side=64)
    assert all(is_a_window_of_the_photo(native[0]) for _ in range(4))
    shrunk = PhotoDataset([path], train_transform(32))  # default: the whole photo, shrunk
    assert not is_a_window_of_the_photo(shrunk[0])
    # Validation scores the photo's centre at the training crops' scale.
    assert torch.equal(PhotoDataset([path], eval_transform(32, load_size=64))[0],
                       photo[:, 16:48, 32:64])


def test_a_jpeg_for_a_large_load_size_is_decoded_at_full_scale(tmp_path):
    path = write_photo(tmp_path / "big.jpg", size=(2000, 1200))
    data = PhotoDataModule(str(tmp_path), image_size=64, load_size=1200, num_workers=0,
                           val_count=0)
    data.setup()
    dataset = data.train_dataloader().dataset
    # Not at libjpeg's 1/8 scale (250x150 for a 64 px crop): Resize would blow it up, blurred.
    assert open_rgb(path, dataset.min_side).size == (2000, 1200)
    assert dataset[0].shape == (3, 64, 64)


def test_large_jpegs_decode_at_reduced_scale_but_never_below_the_crop(tmp_path):
    path = write_photo(tmp_path / "big.jpg", size=(2000, 1200))
    assert open_rgb(path).size == (2000, 1200)
    small = open_rgb(path, min_side=256)
    assert small.size == (500, 300)  # 1/4 scale: the smallest DCT scale keeping 256 px
    crop = PhotoDataset([path], train_transform(256), min_side=256)[0]
    assert crop.shape == (3, 256, 256)


def test_auto_workers_is_half_the_cores_from_2_to_8(monkeypatch):
    from fast_style.data import auto_workers

    for cores, processes, workers in ((1, 1, 2), (2, 1, 2), (4, 1, 2), (16, 1, 8), (96, 1, 8),
                                      (16, 4, 2), (64, 4, 8), (32, 2, 8)):
        monkeypatch.setattr("os.sched_getaffinity", lambda pid, cores=cores: set(range(cores)))
        assert auto_workers(processes) == workers
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)))
    assert PhotoDataModule(num_workers="auto").num_workers == 8
