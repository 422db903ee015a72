"""Fetch training photos, style paintings and the loss network's weights ahead of time.

For machines whose compute nodes have no internet: run this where there is, with the same
overrides as the training command, and everything lands in the cache that training reads
(~/.cache/fast_style, $XDG_CACHE_HOME/fast_style or $FAST_STYLE_CACHE):

    python scripts/download_data.py                              # bsds300 photos, starry_night
    python scripts/download_data.py data=coco style=mosaic       # COCO train2014 (13.5 GB)
    python scripts/download_data.py data=coco --styles all       # and every configured painting

Each download is resumable (run it again after a cut), verified, and unpacked atomically.
Anything already under $FAST_STYLE_DATA or in the cache is not fetched again.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from fast_style.datasets import locate_photos
from fast_style.errors import exit_on_user_error
from fast_style.loss_net import load_weights
from fast_style.styles import resolve_style_image

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def style_configs(names: str, chosen) -> list:
    """The style configs to fetch: ``chosen`` (the style= one) unless --styles names others."""
    if not names:
        return [chosen]
    wanted = ([p.stem for p in sorted((CONFIGS / "style").glob("*.yaml")) if p.stem != "custom"]
              if names == "all" else names.split(","))
    return [OmegaConf.load(CONFIGS / "style" / f"{name}.yaml") for name in wanted]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="training overrides, e.g. data=coco style=wave")
    parser.add_argument("--styles", default="", help="'all' or name,name (default: the style= one)")
    parser.add_argument("--no-photos", action="store_true", help="skip the training photos")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with exit_on_user_error():
        with initialize_config_dir(str(CONFIGS), version_base="1.3"):
            cfg = compose("train", overrides=args.overrides)
        if not args.no_photos:
            data = OmegaConf.to_container(cfg.data, resolve=True)
            keys = ("root", "folder", "url", "sha256", "download", "archive_folders")
            print(f"photos: {locate_photos(**{k: data[k] for k in keys})}")
        for style in style_configs(args.styles, cfg.style):
            if style.get("file") or style.get("image"):
                path = resolve_style_image(style.name, style.get("image"), style.get("file"),
                                           style.get("url"), style.get("sha256"))
                print(f"style {style.name}: {path}")
        load_weights(cfg.loss.vgg_weights)  # caffe: converted into the cache once
        print(f"loss network weights ({cfg.loss.vgg_weights}): ready")


if __name__ == "__main__":
    sys.exit(main())
