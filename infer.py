"""Stylise photos with a trained network.

    python infer.py ckpt=PATH input=photo.jpg output=out.jpg
    python infer.py ckpt=PATH input=photos/ output=stylised/ format=png preserve_color=true
    python infer.py ckpt=MULTI.pth input=photo.jpg style=mosaic        # a network of several styles
    python infer.py ckpt=MULTI.pth input=photo.jpg mix=starry_night:0.7,mosaic:0.3

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
from fast_style.errors import FastStyleError, exit_on_user_error
from fast_style.multistyle.weights import infer_arguments
from fast_style.stylize import StyleOptions, load_model


def _tile(value) -> int | None:
    if value is None or str(value).lower() == "auto":
        return None
    try:
        return int(value)
    except ValueError:
        raise FastStyleError(f"tile={value} must be auto, 0 (never) or a size in px") from None


def infer(cfg: DictConfig) -> int:
    if not cfg.ckpt or not cfg.input:
        raise FastStyleError("usage: python infer.py ckpt=CHECKPOINT input=PHOTO|FOLDER|GLOB "
                             "[output=FILE|FOLDER]")
    options = StyleOptions(tile=_tile(cfg.tile), tile_overlap=int(cfg.tile_overlap),
                           auto_tile_pixels=int(cfg.auto_tile_pixels),
                           preserve_color=bool(cfg.preserve_color), strength=float(cfg.strength))
    options.validate()
    if cfg.max_size is not None and int(cfg.max_size) < 1:
        raise FastStyleError(f"max_size={cfg.max_size} must be a positive size in px")
    jobs = plan_jobs(str(cfg.input), cfg.output and str(cfg.output), cfg.format)
    model = load_model(cfg.ckpt, cfg.device, cfg.precision, cfg.style_name, cfg.mix)
    summary = run_jobs(model, jobs, options, max_size=cfg.max_size and int(cfg.max_size),
                       quality=int(cfg.quality), skip_existing=bool(cfg.skip_existing),
                       progress=bool(cfg.progress))
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
