"""Stylise photos and videos with a trained network.

    python infer.py ckpt=PATH input=photo.jpg output=out.jpg
    python infer.py ckpt=PATH input=photos/ output=stylised/ format=png preserve_color=true
    python infer.py ckpt=PATH input=clip.mp4 output=clip_starry.mp4 [stabilize=false]
    python infer.py ckpt=MULTI.pth input=photo.jpg style=mosaic        # a network of several styles
    python infer.py ckpt=MULTI.pth input=photo.jpg mix=starry_night:0.7,mosaic:0.3
    python infer.py ckpt=PATH input=photos/ compile=true      # torch.compile: pays on folders, video

Settings: configs/infer.yaml. Exit status: 0 all written, 1 some photos failed (each named on
stderr), 2 nothing done (a usage error, an unreadable checkpoint, ...).
"""

import os
import sys

# OpenMP threads spin while waiting for work by default. On a machine that is busy with anything
# else (a training run, a browser) the spinning steals the cores the work needs: a 256 px photo
# took 1.5 s instead of 0.07 s here. Sleeping threads cost ~nothing when the machine is idle.
# Must be set before torch loads OpenMP; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hydra
from omegaconf import DictConfig

from fast_style.batch import plan_jobs, run_jobs
from fast_style.checks import choice, flag, number, whole
from fast_style.errors import FastStyleError, exit_on_user_error
from fast_style.multistyle.weights import infer_arguments
from fast_style.stylize import DEVICES, PRECISIONS, StyleOptions, load_model
from fast_style.video import StabilizeOptions, VideoOptions


def _tile(value) -> int | None:
    if value is None or str(value).lower() == "auto":
        return None
    return whole("tile", value, low=0)


def _auto_tile_pixels(value) -> int | None:
    """None: per device (stylize.auto_tile_pixels)."""
    if str(value).lower() == "auto":
        return None
    return whole("auto_tile_pixels", value, 1)


def infer(cfg: DictConfig) -> int:
    if not cfg.ckpt or not cfg.input:
        raise FastStyleError("usage: python infer.py ckpt=CHECKPOINT input=PHOTO|FOLDER|GLOB "
                             "[output=FILE|FOLDER]")
    # Every value is checked before the model loads or a photo is read: one line naming the key.
    options = StyleOptions(tile=_tile(cfg.tile), tile_overlap=whole("tile_overlap", cfg.tile_overlap, 0),
                           auto_tile_pixels=_auto_tile_pixels(cfg.auto_tile_pixels),
                           preserve_color=flag("preserve_color", cfg.preserve_color),
                           strength=number("strength", cfg.strength, 0, 1),
                           margin=whole("margin", cfg.margin, low=0))
    options.validate()
    max_size = whole("max_size", cfg.max_size, low=1, optional=True)
    max_pixels = whole("max_pixels", cfg.max_pixels, low=0)
    quality = whole("quality", cfg.quality, low=1, high=100)
    skip_existing, progress = flag("skip_existing", cfg.skip_existing), flag("progress", cfg.progress)
    device = choice("device", cfg.device, DEVICES)
    precision = choice("precision", cfg.precision, PRECISIONS)
    settings = cfg.video
    video = VideoOptions(
        StabilizeOptions.parse(cfg.stabilize,
                               stats_memory=number("video.stats_memory", settings.stats_memory, 0, 1),
                               denoise=number("video.denoise", settings.denoise, 0, 1),
                               blend=number("video.blend", settings.blend, 0, 1),
                               encoder_blend=number("video.encoder_blend",
                                                    settings.encoder_blend, 0, 1),
                               residual_blend=number("video.residual_blend",
                                                     settings.residual_blend, 0, 1),
                               motion_threshold=number("video.motion_threshold",
                                                       settings.motion_threshold, 0),
                               cut_threshold=number("video.cut_threshold", settings.cut_threshold, 0)),
        codec=settings.codec, crf=whole("video.crf", settings.crf, 0, 63, optional=True),
        preset=settings.preset)
    jobs = plan_jobs(str(cfg.input), cfg.output and str(cfg.output), cfg.format)
    model = load_model(cfg.ckpt, device, precision, cfg.style_name, cfg.mix,
                       compile=flag("compile", cfg.compile))
    summary = run_jobs(model, jobs, options, max_size=max_size, quality=quality,
                       skip_existing=skip_existing, progress=progress, max_pixels=max_pixels,
                       video=video)
    where = str(summary.written[0]) if len(jobs) == 1 and summary.written else \
        f"{len(summary.written)} of {len(jobs)} photos"
    if summary.written:
        print(f"wrote {where} ({model.describe()})")
    if summary.skipped:
        print(f"skipped {len(summary.skipped)} existing output(s) (skip_existing=true)")
    if summary.failed:
        print(f"error: {len(summary.failed)} of {len(jobs)} photos failed", file=sys.stderr)
        return 1
    return 0


@hydra.main(version_base="1.3", config_path="configs", config_name="infer")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error():
        status = infer(cfg)
    if status:
        raise SystemExit(status)


if __name__ == "__main__":
    sys.argv = infer_arguments(sys.argv)  # style=NAME, mix=a:0.7,b:0.3 as written
    main()
