"""Steady-state benchmarks of the real code paths. The last line of stdout is one JSON object.

    python scripts/benchmark.py train --batch-size 4 --image-size 256 --steps 10 --json
    python scripts/benchmark.py train --reference-recipe --json     # pytorch/examples' recipe
    python scripts/benchmark.py train --compare --json              # both, alternating: the ratio
    python scripts/benchmark.py data --num-workers 2 --json         # photos/s the DataModule delivers
    python scripts/benchmark.py overfit --steps 200 --json          # bf16 vs fp32 loss curves
    python scripts/benchmark.py overhead                            # Lightning's share of a step

Extra ``key=value`` arguments are Hydra overrides of configs/train.yaml (e.g. trainer.precision=
32-true model.channels_last=false model.compile=true): the benchmark builds exactly what
train.py builds. Figures and commands are recorded in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def machine() -> dict:
    """Where a figure was measured: the CPU's model and bf16/AMX flags decide which recipe wins."""
    from fast_style.hardware import cpu_info

    return {"torch": torch.__version__, "threads": torch.get_num_threads(), **cpu_info(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "loadavg_1min": round(os.getloadavg()[0], 2)}


def step_timer():
    """A Lightning callback whose ``times`` holds each training step's seconds, from batch start
    to batch end (forward, losses, backward, optimizer). Lightning is imported here, not at the
    top: the other benchmarks do not need its start-up."""
    import lightning as L

    class StepTimer(L.Callback):
        def __init__(self):
            self.times: list[float] = []

        def on_train_batch_start(self, *args):
            self.start = time.perf_counter()

        def on_train_batch_end(self, *args):
            self.times.append(time.perf_counter() - self.start)

    return StepTimer()


def compose_train_config(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(REPO / "configs"), version_base="1.3"):
        return compose("train", overrides=overrides)


# ----------------------------------------------------------------------------------- train

def build_system(cfg, reference: bool):
    from omegaconf import OmegaConf

    from fast_style.module import StyleTransferSystem
    from fast_style.styles import resolve_style_image

    class ReferenceRecipe(StyleTransferSystem):
        """pytorch/examples' recipe on our modules: the photo's VGG pass also runs to relu4_3,
        and Adam is the plain (per-tensor) implementation."""

        @torch.no_grad()
        def content_target(self, photos):
            return self.vgg(photos, until="relu4_3")[self.hparams.content_layer]

        def configure_optimizers(self):
            return torch.optim.Adam(self.transformer.parameters(), lr=self.hparams.lr)

    model = OmegaConf.to_container(cfg.model, resolve=True)
    if reference:
        model.update(channels_last=False, compile=False)
    style = resolve_style_image(cfg.style.name, cfg.style.image, cfg.style.file, cfg.style.url,
                                cfg.style.sha256)
    cls = ReferenceRecipe if reference else StyleTransferSystem
    return cls(style_image=str(style), style_name=cfg.style.name, style_size=cfg.style.size,
               **model, **OmegaConf.to_container(cfg.loss, resolve=True), lr=cfg.lr)


def measure_train(overrides: list[str], batch_size: int, image_size: int, steps: int, warmup: int,
                  reference: bool) -> dict:
    """Runs the LightningModule's real training step under a real Trainer on in-memory photos
    (so decoding does not count; see `data` for that) and times each step from batch start to
    batch end: forward, losses, backward and optimizer step."""
    import lightning as L
    from torch.utils.data import DataLoader

    from fast_style.hardware import training_precision

    cfg = compose_train_config(overrides)
    precision = ("32-true" if reference
                 else training_precision(cfg.trainer.precision, cfg.trainer.accelerator))
    system = build_system(cfg, reference)
    photos = torch.rand(batch_size * (warmup + steps), 3, image_size, image_size)
    loader = DataLoader(photos, batch_size=batch_size)  # a tensor indexes like a dataset

    timer = step_timer()
    trainer = L.Trainer(accelerator=cfg.trainer.accelerator, devices=1, precision=precision,
                        max_steps=warmup + steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
                        limit_val_batches=0)
    trainer.fit(system, train_dataloaders=loader)
    steady = timer.times[warmup:]
    median = statistics.median(steady)
    return {
        "recipe": "reference" if reference else "default",
        "precision": precision,
        "channels_last": bool(system.hparams.channels_last),
        "compile": bool(system.hparams.compile),
        "batch_size": batch_size, "image_size": image_size, "steps": len(steady),
        "warmup_steps": warmup, "first_step_s": round(timer.times[0], 3),
        "median_step_s": round(median, 4),
        "images_per_s": round(batch_size / median, 3),
        "step_s": [round(t, 3) for t in steady],
    }


# name -> (overrides, reference recipe?, per-image batch norm?, pads keep dtype?)
TRAIN_VARIANTS = {
    "reference": ([], True, False, False),
    "fp32 channels_last batchnorm-IN": (["trainer.precision=32-true"], False, True, True),
    "fp32 channels_last aten-IN": (["trainer.precision=32-true"], False, False, True),
    "fp32 NCHW batchnorm-IN": (["trainer.precision=32-true", "model.channels_last=false"],
                               False, True, True),
    "fp32 NCHW aten-IN": (["trainer.precision=32-true", "model.channels_last=false"],
                          False, False, True),
    "bf16 channels_last batchnorm-IN": (["trainer.precision=bf16-mixed"], False, True, True),
    "bf16 channels_last batchnorm-IN autocast-pads": (["trainer.precision=bf16-mixed"], False,
                                                      True, False),
    "bf16 channels_last aten-IN": (["trainer.precision=bf16-mixed"], False, False, True),
    "bf16 channels_last aten-IN autocast-pads": (["trainer.precision=bf16-mixed"], False, False,
                                                 False),
    "default": ([], False, None, True),  # None: the norm route the device picks
    "default compiled": (["model.compile=true"], False, None, True),  # model.compile=true's route
}


def interleaved_train(overrides: list[str], names: list[str], batch_size: int, image_size: int,
                      steps: int, warmup: int, device: str = "cpu") -> dict:
    """Round-robin, one step of each variant in turn, in one process: on a loaded machine the
    load hits every variant alike, so the ratios hold where single runs would not. The step is
    Lightning's (autocast around the losses, backward and optimizer step outside it) without
    the Trainer around it."""
    from fast_style.hardware import training_precision
    from fast_style.transformer_net import set_kernel_routes

    systems = {}
    for name in names:
        extra, reference, batch_norm, pads = TRAIN_VARIANTS[name]
        cfg = compose_train_config(overrides + extra)
        system = build_system(cfg, reference).to(device).train()
        set_kernel_routes(system.transformer, batch_norm, pads)
        precision = "32-true" if reference else training_precision(cfg.trainer.precision, device)
        if system.hparams.compile:
            if device != "cpu":  # a GPU's compiled step needs the Trainer (CUDA graphs, DDP)
                raise SystemExit("model.compile=true: time it under the Trainer "
                                 "(scripts/benchmark_gpu.py's train_compiled)")
            system.compile_for_training(precision)  # what fit does: the CPU's stage-wise compile
        systems[name] = (system, system.configure_optimizers(), precision)
    photos = torch.rand(batch_size, 3, image_size, image_size, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else lambda: None
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(warmup + steps):
        for name, (system, optimizer, precision) in systems.items():
            sync()
            start = time.perf_counter()
            with torch.autocast(device, torch.bfloat16, enabled=precision == "bf16-mixed"):
                loss = system.training_losses(photos)["loss"]
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sync()
            times[name].append(time.perf_counter() - start)
            if not torch.isfinite(loss):
                raise RuntimeError(f"{name}: loss {loss.item()} is not finite")
    first = statistics.median(times[names[0]][warmup:])
    table = {}
    for name in names:
        median = statistics.median(times[name][warmup:])
        table[name] = {"precision": systems[name][2], "median_step_s": round(median, 3),
                       "images_per_s": round(batch_size / median, 3),
                       f"speedup_vs_{names[0]}": round(first / median, 3),
                       "step_s": [round(t, 3) for t in times[name][warmup:]]}
        print(f"{name:48s} {median:7.2f} s/step  x{first / median:5.2f}", flush=True)
    return {"batch_size": batch_size, "image_size": image_size, "steps": steps,
            "warmup_steps": warmup, "device": device, "variants": table}


def cmd_train(args, overrides) -> dict:
    if args.variants:
        result = interleaved_train(overrides, args.variants.split(","), args.batch_size,
                                   args.image_size, args.steps, args.warmup)
        return {"benchmark": "train-variants", **result, "peak_rss_mb": round(peak_rss_mb(), 1),
                "overrides": overrides, **machine()}
    kwargs = {"batch_size": args.batch_size, "image_size": args.image_size, "steps": args.steps,
              "warmup": args.warmup}
    if not args.compare:
        result = measure_train(overrides, reference=args.reference_recipe, **kwargs)
    else:
        # Alternate the two recipes (ABAB) in one process so machine noise hits both alike.
        runs = {"reference": [], "default": []}
        for _ in range(args.rounds):
            for name, results in runs.items():
                results.append(measure_train(overrides, reference=name == "reference", **kwargs))
        medians = {n: statistics.median(t for r in rs for t in r["step_s"]) for n, rs in runs.items()}
        result = {
            "median_step_s": round(medians["default"], 4),
            "images_per_s": round(args.batch_size / medians["default"], 3),
            "reference_median_step_s": round(medians["reference"], 4),
            "reference_images_per_s": round(args.batch_size / medians["reference"], 3),
            "speedup_vs_reference": round(medians["reference"] / medians["default"], 3),
            "default": runs["default"][-1], "reference": runs["reference"][-1],
        }
    return {"benchmark": "train", **result, "peak_rss_mb": round(peak_rss_mb(), 1),
            "overrides": overrides, **machine()}


# --------------------------------------------------------------------------------- overfit

def cmd_overfit(args, overrides) -> dict:
    """Same seed, same photos, same steps: fp32 vs the configured mixed precision.

    Overfits one fixed batch of real photos, so the curves differ only by arithmetic.
    """
    import lightning as L
    from torch.utils.data import DataLoader

    from fast_style.data import PhotoDataModule, eval_transform
    from fast_style.image_io import open_rgb

    cfg = compose_train_config(overrides)
    dm = PhotoDataModule(**{**cfg.data, "num_workers": 0})
    dm.setup()
    transform = eval_transform(args.image_size)
    batch = torch.stack([transform(open_rgb(p)) for p in dm.train_paths[: args.batch_size]])
    photos = batch.repeat(args.steps, 1, 1, 1)

    class LossCurve(L.Callback):
        def __init__(self):
            self.losses: list[float] = []

        def on_train_batch_end(self, trainer, module, outputs, *args):
            self.losses.append(float(outputs["loss"]))

    # fp32 against bf16-mixed, or against the mixed precision named with trainer.precision=.
    mixed_precision = cfg.trainer.precision if cfg.trainer.precision not in (
        "auto", "32-true") else "bf16-mixed"
    curves = {}
    for precision in ("32-true", mixed_precision):
        L.seed_everything(cfg.seed)
        system = build_system(cfg, reference=False)
        curve = LossCurve()
        trainer = L.Trainer(accelerator=cfg.trainer.accelerator, devices=1, precision=precision,
                            max_steps=args.steps, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[curve], limit_val_batches=0)
        start = time.perf_counter()
        trainer.fit(system, train_dataloaders=DataLoader(photos, batch_size=args.batch_size))
        curves[precision] = {"losses": [round(x, 1) for x in curve.losses],
                             "wall_s": round(time.perf_counter() - start, 1)}

    fp32, mixed = (curves[p]["losses"] for p in ("32-true", mixed_precision))
    # Median over the second half of the run: overfitting one batch with Adam at lr 1e-3 has
    # occasional loss spikes in both precisions (seen near step 185 of 200), which a mean over
    # the last few steps reports as a precision difference. The curves themselves are recorded.
    half = len(fp32) // 2
    end32, end_mixed = statistics.median(fp32[half:]), statistics.median(mixed[half:])
    return {"benchmark": "overfit", "precision": mixed_precision, "steps": args.steps,
            "batch_size": args.batch_size, "image_size": args.image_size,
            "first_loss": fp32[0], "final_loss_fp32": round(end32, 1),
            "final_loss_mixed": round(end_mixed, 1),
            "relative_difference": round((end_mixed - end32) / end32, 4),
            "curves": curves, **machine()}


# ------------------------------------------------------------------------------------ data

def measure_data(data: dict, steps: int, warmup: int) -> dict:
    """Photos per second a PhotoDataModule(**data) delivers (decode, EXIF, resize, crop),
    sustained: one loader over as many epochs as it takes, as in training, timed from the end
    of the warm-up to the last batch. The warm-up drains what the workers prefetched while
    they started (2 batches each), which would otherwise arrive at no cost."""
    from fast_style.data import PhotoDataModule

    dm = PhotoDataModule(**data)
    dm.setup()
    loader = dm.train_dataloader()
    warmup = max(warmup, 4 * max(1, dm.num_workers))
    batches, start = 0, time.perf_counter()
    while batches < warmup + steps:
        for _ in loader:
            batches += 1
            if batches == warmup:
                start = time.perf_counter()
            if batches == warmup + steps:
                break
    mean = (time.perf_counter() - start) / steps
    return {"root": str(dm.root), "num_workers": dm.num_workers, "batch_size": dm.batch_size,
            "image_size": dm.image_size, "batches": steps, "warmup_batches": warmup,
            "mean_batch_s": round(mean, 5), "photos_per_s": round(dm.batch_size / mean, 1)}


def cmd_data(args, overrides) -> dict:
    cfg = compose_train_config(overrides)
    data = {**cfg.data, "batch_size": args.batch_size, "image_size": args.image_size}
    if args.num_workers is not None:
        data["num_workers"] = args.num_workers
    result = measure_data(data, args.steps, args.warmup)
    return {"benchmark": "data", **result, "peak_rss_mb": round(peak_rss_mb(), 1), **machine()}


def cmd_floor(args, overrides) -> dict:
    """The arithmetic floor of one training step on this machine: the step's FLOPs (counted by
    torch.utils.flop_counter on the real training step, default and reference recipes) divided
    by the best rate this CPU reaches on the network's largest convolution, forward and
    backward, in fp32 and bf16. No recipe with the same arithmetic can step faster."""
    from torch.utils.flop_counter import FlopCounterMode

    from fast_style.hardware import training_precision

    cfg = compose_train_config(overrides)
    precision = training_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    photos = torch.rand(args.batch_size, 3, args.image_size, args.image_size)
    flops = {}
    for name, reference in (("default", False), ("reference", True)):
        system = build_system(cfg, reference)
        counter = FlopCounterMode(display=False)
        with counter:
            system.compute_losses(photos)["loss"].backward()
        flops[name] = counter.get_total_flops()

    def rate(dtype) -> float:
        """FLOP/s of a 128->128 3x3 convolution at 1/4 of the crop, batch 4, fwd + bwd."""
        side = args.image_size // 4
        x = torch.rand(args.batch_size, 128, side + 2, side + 2, dtype=dtype,
                       requires_grad=True).contiguous(memory_format=torch.channels_last)
        conv = torch.nn.Conv2d(128, 128, 3).to(dtype).to(memory_format=torch.channels_last)
        work = 3 * 2 * args.batch_size * 128 * 128 * 9 * side * side  # fwd, dgrad, wgrad
        times = []
        for _ in range(args.steps + 2):
            start = time.perf_counter()
            conv(x).sum().backward()
            times.append(time.perf_counter() - start)
        return work / statistics.median(times[2:])

    rates = {"fp32": rate(torch.float32), "bf16": rate(torch.bfloat16)}
    used = rates["bf16" if precision.startswith("bf16") else "fp32"]
    return {"benchmark": "train-floor", "batch_size": args.batch_size,
            "image_size": args.image_size, "precision": precision,
            "gflop_per_step": {k: round(v / 1e9, 1) for k, v in flops.items()},
            "conv_gflop_per_s": {k: round(v / 1e9, 1) for k, v in rates.items()},
            "floor_s_per_step": {k: round(v / used, 3) for k, v in flops.items()},
            **machine(), "overrides": overrides}


def cmd_overhead(args, overrides) -> dict:
    """Lightning's share of a training step: the real system under a Trainer set up as
    train.py's (its progress bar, a CSV logger, log_every_n_steps=10) with a 16 px, width-4
    network and random VGG weights, so that the compute is small. Reports ms per step and how
    many values per step are read off the device (each read makes a CPU wait for a GPU)."""
    import contextlib
    import io
    import tempfile

    import lightning as L
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader

    from fast_style.feedback import StepProgressBar
    from fast_style.module import StyleTransferSystem
    from fast_style.styles import resolve_style_image

    reads = [0]

    def counted(read):
        def wrapper(tensor):
            reads[0] += 1
            return read(tensor)
        return wrapper

    class Clock(L.Callback):
        def on_train_batch_start(self, trainer, *_):
            if trainer.global_step == args.warmup:
                self.start, self.reads = time.perf_counter(), reads[0]

        def on_train_end(self, *_):
            self.seconds, self.reads = time.perf_counter() - self.start, reads[0] - self.reads

    style = compose_train_config(overrides).style  # any painting: VGG's weights are random
    system = StyleTransferSystem(str(resolve_style_image(style.name, style.image, style.file,
                                                         style.url, style.sha256)),
                                 style_size=16, width=4, num_residual_blocks=1,
                                 vgg_weights="random")
    steps, clock = args.warmup + args.steps, Clock()
    item, to_float = torch.Tensor.item, torch.Tensor.__float__
    torch.Tensor.item, torch.Tensor.__float__ = counted(item), counted(to_float)
    try:
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps,
                                logger=CSVLogger(tmp), enable_checkpointing=False,
                                callbacks=[clock, StepProgressBar()], enable_model_summary=False,
                                log_every_n_steps=10, limit_val_batches=0)
            trainer.fit(system, DataLoader(torch.rand(steps * 2, 3, 16, 16), batch_size=2))
    finally:
        torch.Tensor.item, torch.Tensor.__float__ = item, to_float
    return {"benchmark": "step-overhead", "steps": args.steps, "warmup_steps": args.warmup,
            "ms_per_step": round(clock.seconds / args.steps * 1000, 3),
            "values_read_per_step": round(clock.reads / args.steps, 2), **machine()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="seconds per training step of the real training path")
    train.add_argument("--batch-size", type=int, default=4)
    train.add_argument("--image-size", type=int, default=256)
    train.add_argument("--steps", type=int, default=10, help="timed steps after warm-up")
    train.add_argument("--warmup", type=int, default=3)
    train.add_argument("--reference-recipe", action="store_true",
                       help="fp32, eager, contiguous, photo VGG pass to relu4_3, plain Adam")
    train.add_argument("--compare", action="store_true",
                       help="default and reference recipes alternately; reports the speed-up")
    train.add_argument("--rounds", type=int, default=2, help="with --compare: ABAB rounds")
    train.add_argument("--variants", default=None,
                       help="comma-separated names of TRAIN_VARIANTS, timed step by step in turn "
                       "(the first is the baseline of the ratios), e.g. reference,default")
    train.add_argument("--json", action="store_true", help="(the JSON line is always printed)")
    train.set_defaults(func=cmd_train)

    data = sub.add_parser("data", help="photos/s delivered by the training DataModule")
    data.add_argument("--batch-size", type=int, default=4)
    data.add_argument("--image-size", type=int, default=256)
    data.add_argument("--num-workers", type=int, default=None)
    data.add_argument("--steps", type=int, default=30, help="timed batches after warm-up")
    data.add_argument("--warmup", type=int, default=5)
    data.add_argument("--json", action="store_true", help="(the JSON line is always printed)")
    data.set_defaults(func=cmd_data)

    floor = sub.add_parser("floor", help="FLOPs of a training step / this CPU's conv rate")
    floor.add_argument("--batch-size", type=int, default=4)
    floor.add_argument("--image-size", type=int, default=256)
    floor.add_argument("--steps", type=int, default=5, help="timed convolution passes")
    floor.set_defaults(func=cmd_floor)

    overhead = sub.add_parser("overhead", help="Lightning's CPU work and device reads a step")
    overhead.add_argument("--steps", type=int, default=200, help="timed steps after warm-up")
    overhead.add_argument("--warmup", type=int, default=20)
    overhead.set_defaults(func=cmd_overhead)

    from benchmark_infer import add_infer_parser  # the infer and video subcommands live beside
    from benchmark_video import add_video_parser  # this file

    add_infer_parser(sub)
    add_video_parser(sub)

    overfit = sub.add_parser("overfit", help="loss curves of fp32 vs mixed precision, one batch")
    overfit.add_argument("--batch-size", type=int, default=4)
    overfit.add_argument("--image-size", type=int, default=128)
    overfit.add_argument("--steps", type=int, default=200)
    overfit.add_argument("--json", action="store_true", help="(the JSON line is always printed)")
    overfit.set_defaults(func=cmd_overfit)

    args, overrides = parser.parse_known_args()
    bad = [o for o in overrides if "=" not in o]
    if bad:
        parser.error(f"unknown arguments {bad}; extra arguments must be Hydra key=value overrides")
    result = args.func(args, overrides)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(main())
