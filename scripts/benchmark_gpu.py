"""One GPU, everything we want to know, in one go (how to run it: benchmarks/gpu.md).

    bash benchmarks/gpu.sh                                   # on the GPU machine: set-up + this
    python scripts/benchmark_gpu.py --out benchmarks/results/gpu.json
    python scripts/benchmark_gpu.py --tiny --device cpu --out /tmp/gpu_tiny.json   # smoke run

Sections, each recorded even when a later one fails, and the JSON rewritten after each, so a
run stopped at its time limit still leaves what it measured:

- train: images/s of train.py's real step (LightningModule under a Lightning Trainer, bf16-mixed,
  channels_last) at batch 4 and 16, 256 px, eager, the projected time for 40,000 steps, finite
  losses, peak GPU memory; train_compiled: the same with ``model.compile=true`` (on a GPU, the
  whole step compiled and replayed as CUDA graphs);
- step_profile: where an eager step's GPU time goes (kernel time and launches per step, the top
  kernels);
- gram: the style loss's Grams summed whole against in chunks of positions (losses.py);
- kernel_routes: the CPU-motivated choices (instance norm as per-image batch norm, reflection
  pads kept in bf16) against plain F.instance_norm and autocast's pads, step by step in turn;
- data: photos/s the DataModule delivers with this machine's cores, against what training eats;
- infer: ms per photo at 1024x1024 and 3840x2160 in fp16 and bf16, through stylize_photo (what
  infer.py runs: upload, network, download) and the network alone, plus both norm routes;
- correctness: the GPU's output against the CPU's fp32 output of the same trained weights (PSNR);
- video: fps of a 1080p pan through the default stabiliser and frame by frame;
- quality (only with ``--quality-s N``): the real ``train.py``, compiled, for Johnson's 40,000
  steps (``--quality-steps``) or N seconds, whichever ends first, its learning rate decaying
  linearly to 0 there; train.py's own pace and every kept checkpoint judged like
  benchmarks/time_to_quality.md (the 20 photos ``data.val_count=20`` holds out, native size).

``--tiny`` shrinks every size and count so the whole script runs in seconds on a CPU (the test
suite runs it so that it cannot rot); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from functools import partial
from itertools import pairwise
from pathlib import Path

import torch

from fast_style.losses import GRAM_CHUNK_POSITIONS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import (  # scripts/ is not a package: imported through sys.path
    build_system,
    compose_train_config,
    interleaved_train,
    machine,
    measure_data,
)

JOHNSON_STEPS = 40_000
FULL = {"train_batches": (4, 16), "image_size": 256, "train_steps": 50, "train_warmup": 10,
        "route_steps": 15, "route_warmup": 3, "data_batches": 300, "data_warmup": 10,
        "infer_sizes": ((1024, 1024), (2160, 3840)), "infer_runs": 10, "psnr_size": 1024,
        "video_size": (1080, 1920), "video_frames": 48, "profile_steps": 5, "gram_runs": 12,
        "gram_chunk": GRAM_CHUNK_POSITIONS}
TINY = {"train_batches": (2,), "image_size": 32, "train_steps": 2, "train_warmup": 1,
        "route_steps": 1, "route_warmup": 1, "data_batches": 3, "data_warmup": 1,
        "infer_sizes": ((48, 64),), "infer_runs": 1, "psnr_size": 48,
        "video_size": (36, 64), "video_frames": 4, "profile_steps": 1, "gram_runs": 1,
        "gram_chunk": 256}  # 32 px: 1,024 positions at relu1_2, 4 chunks
TINY_OVERRIDES = ["model.width=8", "model.num_residual_blocks=1", "style.size=32",
                  "loss.vgg_weights=random"]


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def mark(device: str):
    """A point on the device's timeline: a recorded CUDA event (the CPU does not wait), or the
    CPU's clock where the device is the CPU."""
    if device != "cuda":
        return time.perf_counter()
    event = torch.cuda.Event(enable_timing=True)
    event.record()
    return event


def gaps_ms(marks: list) -> list[float]:
    """Milliseconds between consecutive marks (the device drained first)."""
    if marks and not isinstance(marks[0], float):
        return [a.elapsed_time(b) for a, b in pairwise(marks)]
    return [(b - a) * 1000 for a, b in pairwise(marks)]


def peak_memory_mb(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == "cuda" else None


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


# ----------------------------------------------------------------------------------- train

def train_run(overrides: list[str], device: str, batch_size: int, image_size: int, steps: int,
              warmup: int, compile_: bool):
    """train.py's step under a real Trainer on in-memory photos; returns (figures, system)."""
    import lightning as L
    from torch.utils.data import DataLoader

    from fast_style.hardware import training_precision

    cfg = compose_train_config(overrides + [f"model.compile={str(compile_).lower()}"])
    precision = training_precision(cfg.trainer.precision, device)
    system = build_system(cfg, reference=False)
    photos = torch.rand(batch_size * (warmup + steps), 3, image_size, image_size)

    class Clock(L.Callback):
        """Wall time of the steps after warm-up, the device drained at both ends; and each
        step's start as the device reaches it (CUDA events: no wait), whose gaps give a median
        that one slow step (a recompilation, a CUDA-graph recording) cannot move."""

        def __init__(self):
            self.first_step_s, self.losses, self.marks = None, [], []

        def on_train_batch_start(self, trainer, *args):
            if trainer.global_step in (0, warmup):
                sync(device)
                self.start = time.perf_counter()
            if trainer.global_step >= warmup:
                self.marks.append(mark(device))

        def on_train_batch_end(self, trainer, module, outputs, *args):
            # Kept on the device and read at the end: reading each step's loss would make the
            # CPU wait for the GPU every step, which train.py does not (feedback.StepProgressBar).
            self.losses.append(outputs["loss"])
            if trainer.global_step == warmup + steps:  # the end of the last timed step
                self.marks.append(mark(device))
            if trainer.global_step == 1:
                sync(device)
                self.first_step_s = time.perf_counter() - self.start

        def on_train_end(self, *args):
            sync(device)
            self.elapsed = time.perf_counter() - self.start

    clock = Clock()
    reset_peak(device)
    trainer = L.Trainer(accelerator="gpu" if device == "cuda" else "cpu", devices=1,
                        precision=precision, max_steps=warmup + steps, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[clock], limit_val_batches=0)
    trainer.fit(system, train_dataloaders=DataLoader(photos, batch_size=batch_size,
                                                     pin_memory=device == "cuda"))
    step_s = clock.elapsed / steps
    clock.losses = [float(loss) for loss in clock.losses]
    return {
        "batch_size": batch_size, "image_size": image_size, "precision": precision,
        "channels_last": bool(system.hparams.channels_last), "compile": compile_,
        "timed_steps": steps, "warmup_steps": warmup,
        "first_step_s": round(clock.first_step_s, 3), "step_ms": round(step_s * 1000, 2),
        # The median step and the slowest: far from step_ms, a few steps stalled the run.
        **{f"step_ms_{name}": round(f(gaps_ms(clock.marks)), 2)
           for name, f in (("median", statistics.median), ("max", max))},
        "images_per_s": round(batch_size / step_s, 1),
        "projected_40k_steps_min": round(JOHNSON_STEPS * step_s / 60, 1),
        "losses_finite": all(math.isfinite(x) for x in clock.losses),
        "first_loss": round(clock.losses[0], 1), "last_loss": round(clock.losses[-1], 1),
        "peak_gpu_memory_mb": peak_memory_mb(device),
    }, system


def step_profile(overrides: list[str], device: str, batch_size: int, image_size: int,
                 steps: int) -> dict:
    """Where an eager training step's GPU time goes (torch.profiler): kernel time and launches
    per step, and the kernels that take most. Kernel time near the step time means the GPU, not
    Python, sets the pace."""
    from torch.profiler import ProfilerActivity, profile

    from fast_style.hardware import training_precision

    cfg = compose_train_config(overrides)
    system = build_system(cfg, reference=False).to(device).train()
    optimizer = system.configure_optimizers()
    bf16 = training_precision(cfg.trainer.precision, device) == "bf16-mixed"
    photos = torch.rand(batch_size, 3, image_size, image_size, device=device)

    def step():
        with torch.autocast(device, torch.bfloat16, enabled=bf16):
            loss = system.compute_losses(photos)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync(device)
    kernels = [e for e in prof.key_averages() if e.device_type.name == "CUDA"]
    per_step = sum(e.self_device_time_total for e in kernels) / steps / 1000
    top = sorted(kernels, key=lambda e: -e.self_device_time_total)[:8]
    return {"batch_size": batch_size, "image_size": image_size, "profiled_steps": steps,
            "kernel_ms_per_step": round(per_step, 2),
            "kernels_per_step": round(sum(e.count for e in kernels) / steps),
            "top_kernels": [{"kernel": e.key[:90], "ms_per_step":
                             round(e.self_device_time_total / steps / 1000, 3),
                             "calls_per_step": e.count // steps} for e in top]}


def gram_section(device: str, batch_size: int, image_size: int, runs: int,
                 chunk: int) -> dict:
    """The style loss's Grams (forward and backward, the four style layers' shapes in bf16
    channels_last) summed whole against in chunks of ``chunk`` positions
    (losses.GRAM_CHUNK_POSITIONS in the real run), in turn."""
    from fast_style.losses import gram_matrix

    shapes = [(64, image_size), (128, image_size // 2), (256, image_size // 4),
              (512, image_size // 8)]
    features = [torch.rand(batch_size, c, side, side, device=device, dtype=torch.bfloat16)
                .contiguous(memory_format=torch.channels_last).requires_grad_()
                for c, side in shapes]

    def grams(chunk_positions: int) -> None:
        total = sum(gram_matrix(f, chunk_positions).square().sum() for f in features)
        total.backward()

    variants = {"whole": 0, "chunks": chunk}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, positions in variants.items():
            times[name] += time_ms(partial(grams, positions), 1, device)
    medians = {name: statistics.median(t[2:] or t) for name, t in times.items()}
    whole = medians["whole"]
    return {"batch_size": batch_size, "layers": [f"{c}x{side}x{side}" for c, side in shapes],
            "chunk_positions": chunk,
            **{f"{name}_ms": round(ms, 3) for name, ms in medians.items()},
            "speedup": {name: round(whole / ms, 2) for name, ms in medians.items()}}


# ----------------------------------------------------------------------------------- infer

def photo(height: int, width: int) -> torch.Tensor:
    from benchmark_infer import _photo

    return _photo(height, width, None)


def time_ms(fn, runs: int, device: str) -> list[float]:
    times = []
    for _ in range(runs):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - start) * 1000)
    return times


def infer_section(net, device: str, sizes, runs: int) -> dict:
    """stylize_photo (infer.py's path) and the network alone, fp16 and bf16, both norm routes."""
    from fast_style.stylize import StyleOptions, TorchModel, stylize_photo
    from fast_style.transformer_net import set_kernel_routes

    out = {}
    for height, width in sizes:
        image = photo(height, width)
        for precision in ("fp16", "bf16"):
            model = TorchModel(clone(net), {"style_name": "benchmark"}, torch.device(device),
                               precision)
            x = (image.to(device, model.dtype) / 255).unsqueeze(0).contiguous(
                memory_format=torch.channels_last)
            options = StyleOptions()
            reset_peak(device)
            row = {"tile": options.tile_for(height, width, torch.device(device))}
            with torch.inference_mode():
                for route, batch_norm in (("batchnorm-IN", True), ("aten-IN", False)):
                    set_kernel_routes(model.net, per_image_batch_norm=batch_norm)
                    model.net(x)  # warm-up: cuDNN picks its algorithms
                    row[f"network_ms_{route}"] = round(statistics.median(
                        time_ms(partial(model.net, x), runs, device)), 2)
                set_kernel_routes(model.net)
                stylize_photo(model, image, options)
                row["stylize_photo_ms"] = round(statistics.median(
                    time_ms(partial(stylize_photo, model, image, options), runs, device)), 1)
            row["peak_gpu_memory_mb"] = peak_memory_mb(device)
            out[f"{width}x{height} {precision}"] = row
    return out


def infer_compiled_section(net, device: str, size: tuple[int, int], runs: int) -> dict:
    """infer.py's ``compile=true`` at one size: the first photo (compilation) and then."""
    from fast_style.stylize import StyleOptions, TorchModel, stylize_photo

    height, width = size
    image = photo(height, width)
    out = {}
    for precision in ("fp16",):  # one compilation is ~30 s of the GPU's few minutes
        model = TorchModel(clone(net), {"style_name": "benchmark"}, torch.device(device),
                           precision, compile=True)
        x = (image.to(device, model.dtype) / 255).unsqueeze(0).contiguous(
            memory_format=torch.channels_last)
        options = StyleOptions()
        with torch.inference_mode():
            [first_ms] = time_ms(partial(model._forward, x), 1, device)  # compiles
            network = statistics.median(time_ms(partial(model._forward, x), runs, device))
            stylize_photo(model, image, options)
            whole = statistics.median(
                time_ms(partial(stylize_photo, model, image, options), runs, device))
        out[f"{width}x{height} {precision}"] = {
            "first_pass_ms (compiles)": round(first_ms), "network_ms": round(network, 2),
            "stylize_photo_ms": round(whole, 1)}
    return out


def clone(net):
    import copy

    return copy.deepcopy(net).cpu().float()


def psnr_section(net, device: str, size: int) -> dict:
    """The device's fp16/bf16 output against the CPU's fp32 output, same weights, a real photo."""
    from fast_style.stylize import TorchModel

    image = photo(size, size)
    x = (image.float() / 255).unsqueeze(0)
    cpu = TorchModel(clone(net), {}, torch.device("cpu"), "fp32")(x)
    out = {}
    for precision in ("fp32", "fp16", "bf16"):
        got = TorchModel(clone(net), {}, torch.device(device), precision)(x)
        mse = (got - cpu).pow(2).mean().item()
        out[f"{precision}_psnr_db"] = round(99.0 if mse == 0 else 10 * math.log10(1 / mse), 1)
    out["ok"] = min(out["fp16_psnr_db"], out["bf16_psnr_db"]) >= 40
    return out


# ----------------------------------------------------------------------------------- video

def video_section(net, device: str, size: tuple[int, int], frames: int) -> dict:
    """fps of a 1080p clip: the frames through the default stabiliser (denoising and feature
    blending along the optical flow) and frame by frame, in memory; then, where PyAV is installed, the whole
    file path of infer.py (decode, stylise, encode H.264) on a clip written here."""
    from fast_style.stylize import StyleOptions, TorchModel
    from fast_style.video.stabilize import StabilizeOptions, Stabilizer

    height, width = size
    base = photo(height + frames, width + 2 * frames)
    clip = [base[:, i:i + height, 2 * i:2 * i + width].contiguous() for i in range(frames)]  # a pan
    out = {"size": f"{width}x{height}", "frames": frames}
    default = "true"
    try:
        import cv2  # noqa: F401 - the default's optical flow; ~50 MB, more than a GPU call carries
    except ImportError:
        default = "stats+blend"
        out["default_mode"] = "stats+blend: OpenCV is not installed on this machine"
    for precision in ("fp16", "bf16"):
        model = TorchModel(clone(net), {"style_name": "benchmark"}, torch.device(device),
                           precision)
        for mode in ("default", "frame"):
            stabilizer = Stabilizer(model, StyleOptions(), StabilizeOptions.parse(
                default if mode == "default" else "frame"))
            stabilizer(clip[0])  # warm-up
            sync(device)
            start = time.perf_counter()
            for frame in clip:
                stabilizer(frame)
            sync(device)
            stabilizer.close()
            out[f"{precision} {mode} fps (frames in memory)"] = round(
                frames / (time.perf_counter() - start), 1)
    try:
        import av
    except ImportError:
        out["file_path"] = "skipped: PyAV is not installed on this machine"
        return out
    import tempfile

    import numpy as np

    from fast_style.batch import plan_jobs, run_jobs
    from fast_style.video import VideoOptions

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "clip.mp4"
        with av.open(str(source), "w") as container:
            stream = container.add_stream("libx264", rate=24)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for frame in clip:
                image = av.VideoFrame.from_ndarray(np.ascontiguousarray(
                    frame.permute(1, 2, 0).numpy()), format="rgb24")
                container.mux(stream.encode(image))
            container.mux(stream.encode())
        model = TorchModel(clone(net), {"style_name": "benchmark"}, torch.device(device), "fp16")
        start = time.perf_counter()
        summary = run_jobs(model, plan_jobs(str(source), str(Path(tmp) / "out.mp4")),
                           StyleOptions(), progress=False, video=VideoOptions())
        if summary.failed:
            raise RuntimeError(f"video path failed: {summary.failed}")
        out["fp16 default fps (mp4 file to mp4 file)"] = round(
            frames / (time.perf_counter() - start), 1)
    return out


# --------------------------------------------------------------------------------- quality

# experiment=cpu_budget's recipe (lr 2e-3, 100-step warm-up, linear decay to 0 where the run
# ends), at train.py's own 256 px and batch 4. Runs 1-3 in gpu.md used a cosine sized in steps
# from the measured rate instead; train.py now ends the decay at trainer.max_time itself.
QUALITY_RECIPE = ["lr=2e-3", "lr_warmup_steps=100", "lr_decay=linear"]


def max_time(seconds: float) -> str:
    """trainer.max_time's DD:HH:MM:SS for a number of seconds."""
    s = max(1, int(seconds))
    return f"{s // 86400:02d}:{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def quality_section(overrides: list[str], device: str, seconds: float, max_steps: int,
                    out_dir: Path, tiny: bool, compile_: bool) -> dict:
    """`python train.py style=starry_night` (256 px, batch 4, this GPU's precision) for
    ``max_steps`` steps or ``seconds`` of training, whichever comes first, with QUALITY_RECIPE's
    rate decaying to 0 there; every kept checkpoint judged on the held-out photos."""
    import time_to_quality as ttq

    steps = 4 if tiny else max_steps
    # At most 2,000 steps apart: a run that the time limit ends early still keeps several
    # checkpoints to judge and to take its pace from.
    every = 2 if tiny else max(100, min(2000, steps // 10 // 100 * 100))
    # Loader workers: train.py's own data.num_workers=auto (8 on a 16-core GPU machine). Tiny
    # runs set no time limit: their 4 steps must all run, however slow the CPU is today.
    recipe = [*overrides, *QUALITY_RECIPE, f"trainer.max_steps={steps}",
              *([] if tiny else [f"trainer.max_time={max_time(seconds)}"]),
              *(["model.compile=true"] if compile_ else []),
              *(["data.image_size=32", "data.batch_size=2", "data.num_workers=0"] if tiny else [])]
    with tempfile.TemporaryDirectory() as tmp:  # checkpoints and logs: only the network is kept
        log = out_dir / "gpu_quality.train.log"  # train.py's own output comes back either way
        try:
            # The limit here is a safety net past trainer.max_time (start-up, compilation).
            start, ckpt_dir = ttq.train("gpu_quality", (seconds + 120) / 60, every, None,
                                        Path(tmp), recipe, "starry_night")
        except SystemExit as e:  # train.py failed: keep its log, and the other sections
            raise RuntimeError(f"{e} (copied to {log})") from None
        finally:
            shutil.copyfile(Path(tmp) / "gpu_quality.train.log", log)
        found = ttq.snapshots(ckpt_dir, start)
        shutil.copyfile(ckpt_dir / "starry_night.pth", out_dir / "gpu_quality_starry_night.pth")
        points, reference = judge(found, device, tiny)
    # train.py's own pace between the first and the last kept checkpoint: the steady state,
    # validation and checkpointing included, compilation and start-up not.
    (first, t0, _), (last, t1, _) = found[0], found[-1]
    pace = {}
    if last > first:
        ms = (t1 - t0) * 60_000 / (last - first)
        pace = {"steady_ms_per_step": round(ms, 2),
                "projected_40k_steps_min": round(ms * JOHNSON_STEPS / 60_000, 2)}
    return {"recipe": recipe, "train_seconds_budget": seconds, "max_steps": steps,
            "steps_run": last, "minutes_from_launch": round(t1, 2), **pace,
            "network": "gpu_quality_starry_night.pth", **reference, "points": points}


def judge(found, device: str, tiny: bool) -> tuple[list[dict], dict]:
    """time_to_quality.py's judge of every kept checkpoint, on this device."""
    import time_to_quality as ttq

    from fast_style import evaluation as ev

    data = Path(os.environ.get("FAST_STYLE_DATA", "data")) / "bsds300-train"
    photos = ev.select_photos(data, 20, limit=2 if tiny else None)
    style_image = ev.resolve_style("starry_night", ttq.STYLE_CONFIGS)
    # The judge sets exact fp32 (no TF32) process-wide; the sections after it keep the defaults.
    saved = torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    try:
        points, reference = ttq.judge_snapshots(found, photos, style_image, "starry_night",
                                                device)
    finally:
        torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = saved
    return points, {"judged_photos": len(photos), "judge": ev.JUDGE_DESCRIPTION, **reference}


# ------------------------------------------------------------------------------------ main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write (rewritten per section)")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run (CPU tests)")
    parser.add_argument("--budget-s", type=float, default=420,
                        help="seconds for the run: a compiled run starts only with 100 left")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--quality-s", type=float, default=0,
                        help="also train for this many seconds and judge (adds to --budget-s)")
    parser.add_argument("--quality-steps", type=int, default=JOHNSON_STEPS,
                        help="the quality run's steps, if --quality-s does not end it first")
    parser.add_argument("--sections", help="run only these, comma-separated (default: all)")
    parser.add_argument("--train-batches", help="training batch sizes, comma-separated "
                        "(default: 4,16)")
    args, overrides = parser.parse_known_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run with --device cpu --tiny for the smoke run")
    size = dict(TINY if args.tiny else FULL)
    if args.train_batches:
        size["train_batches"] = tuple(int(b) for b in args.train_batches.split(","))
    wanted = set(args.sections.split(",")) if args.sections else None
    budget_s = args.budget_s + (args.quality_s + 60 if args.quality_s else 0)
    overrides = [*(TINY_OVERRIDES if args.tiny else []), *overrides]
    began = time.perf_counter()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report: dict = {"benchmark": "gpu", "tiny": args.tiny, "device": args.device,
                    "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
                    "cuda_version": torch.version.cuda,
                    "cudnn_version": torch.backends.cudnn.version() if args.device == "cuda"
                    else None, "overrides": overrides, **machine(), "sections": {}}

    def record(name: str, fn):
        """Run one section; its result or its error goes into the report, written at once."""
        if wanted is not None and name not in wanted:
            return
        start = time.perf_counter()
        try:
            report["sections"][name] = fn()
        except Exception as e:  # noqa: BLE001 - a failed section must not lose the others
            report["sections"][name] = {"error": f"{type(e).__name__}: {e}",
                                        "traceback": traceback.format_exc()[-3000:]}
        report["sections"][name + "_wall_s"] = round(time.perf_counter() - start, 1)
        report["wall_s"] = round(time.perf_counter() - began, 1)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=1))
        os.replace(tmp, out)
        print(f"[{report['wall_s']:6.1f} s] {name}: "
              f"{json.dumps(report['sections'][name])[:400]}", flush=True)

    trained = {}

    def train_eager():
        rows = []
        for batch in size["train_batches"]:
            row, system = train_run(overrides, args.device, batch, size["image_size"],
                                    size["train_steps"], size["train_warmup"], compile_=False)
            rows.append(row)
            trained["net"] = system.transformer
        return rows

    def train_compiled():
        rows = []
        for batch in size["train_batches"]:
            if args.no_compile or args.tiny or time.perf_counter() - began > budget_s - 100:
                # (--tiny: Inductor takes minutes to compile on a CPU, however small the net)
                rows.append({"batch_size": batch, "skipped": "time budget, --tiny or --no-compile"})
                continue
            rows.append(train_run(overrides, args.device, batch, size["image_size"],
                                  size["train_steps"], size["train_warmup"], compile_=True)[0])
        return rows

    def kernel_routes():
        # default = the GPU's own routes (aten instance norm for batches, pads in bf16);
        # batchnorm-IN forces the CPU's per-image batch norm, autocast-pads autocast's pads.
        names = ["default", "bf16 channels_last batchnorm-IN",
                 "bf16 channels_last aten-IN autocast-pads",
                 "bf16 channels_last batchnorm-IN autocast-pads"]
        return interleaved_train([*overrides, "trainer.precision=bf16-mixed"], names,
                                 size["train_batches"][-1], size["image_size"],
                                 size["route_steps"], size["route_warmup"], args.device)

    def data():
        cfg = compose_train_config(overrides)
        workers = report["cpu_count"] or 1
        loader = {**cfg.data, "batch_size": 16, "image_size": size["image_size"],
                  "num_workers": 0 if args.tiny else workers, "val_count": 1}
        result = measure_data(loader, size["data_batches"], size["data_warmup"])
        trains = [r for r in report["sections"].get("train", []) if "images_per_s" in r]
        if trains:  # eager training
            fastest = max(r["images_per_s"] for r in trains)
            result["fastest_training_images_per_s"] = fastest
            result["data_over_training"] = round(result["photos_per_s"] / fastest, 2)
        return result

    def quality():
        # Compiled, unless this run's compiled training failed or trained non-finite.
        rows = report["sections"].get("train_compiled", [])
        broken = isinstance(rows, dict) or any(
            "error" in r or r.get("losses_finite") is False for r in rows)
        return quality_section(overrides, args.device, args.quality_s, args.quality_steps,
                               out.parent, args.tiny,
                               compile_=not (args.no_compile or args.tiny or broken))

    record("train", train_eager)
    record("train_compiled", train_compiled)
    record("step_profile", lambda: step_profile(overrides, args.device, 4, size["image_size"],
                                                size["profile_steps"]))
    record("gram", lambda: gram_section(args.device, 4, size["image_size"], size["gram_runs"],
                                        size["gram_chunk"]))
    if "net" not in trained:  # training failed: time and check an untrained network instead
        from fast_style.transformer_net import TransformerNet

        trained["net"] = TransformerNet(**({"width": 8, "num_residual_blocks": 1}
                                           if args.tiny else {}))
    record("infer", lambda: infer_section(trained["net"], args.device, size["infer_sizes"],
                                          size["infer_runs"]))
    record("correctness", lambda: psnr_section(trained["net"], args.device, size["psnr_size"]))
    if args.quality_s:
        record("quality", quality)
    record("kernel_routes", kernel_routes)
    record("data", data)
    record("video", lambda: video_section(trained["net"], args.device, size["video_size"],
                                          size["video_frames"]))
    if not (args.no_compile or args.tiny):  # (--tiny: Inductor takes minutes on a CPU)
        record("infer_compiled", lambda: infer_compiled_section(
            trained["net"], args.device, size["infer_sizes"][0], size["infer_runs"]))
    failed = [n for n, s in report["sections"].items() if isinstance(s, dict) and "error" in s]
    print(f"wrote {out} in {report['wall_s']} s; failed sections: {failed or 'none'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
