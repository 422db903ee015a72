"""The ``infer`` subcommand of scripts/benchmark.py: milliseconds per photo on the real path.

    python scripts/benchmark.py infer --size 1024 --json                 # the default path
    python scripts/benchmark.py infer --size 1024 --compare --ckpt X     # every variant + reference
    python scripts/benchmark.py infer --size 3840x2160 --runs 1          # 4K: tiles, peak RSS

The default path is exactly what infer.py does between decoding and encoding a photo:
``stylize_photo(load_model(ckpt), pixels)`` with the default device, precision and tiling.
``--compare`` times, round-robin in this one process (the machine may be loaded; only ratios
measured side by side mean much), the variants we tried and pytorch/examples' TransformerNet in
fp32 eager (fast_style.reference), and reports each one's PSNR against our fp32 output.
Figures and commands are recorded in benchmarks/inference.md.
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torchvision.transforms.v2 import functional as TF

REPO = Path(__file__).resolve().parents[1]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _size(text: str) -> tuple[int, int]:
    """'1024' -> (1024, 1024); '3840x2160' -> (height 2160, width 3840)."""
    parts = [int(p) for p in text.lower().split("x")]
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[1], parts[0])


def _photo(height: int, width: int, path: str | None) -> torch.Tensor:
    """A real photo (content/amber.jpg by default) scaled and cropped to cover the size, as
    (3, H, W) uint8; PSNR on noise would say little about photos."""
    from fast_style.image_io import load_photo

    if path is None and not os.environ.get("FAST_STYLE_DATA"):
        raise SystemExit("set FAST_STYLE_DATA to the folder holding content/amber.jpg, or pass --photo")
    photo = load_photo(path or Path(os.environ["FAST_STYLE_DATA"]) / "content" / "amber.jpg").rgb
    h, w = photo.shape[-2:]
    scale = max(height / h, width / w)
    photo = TF.resize(photo, [math.ceil(h * scale), math.ceil(w * scale)], antialias=True)
    return TF.center_crop(photo, [height, width])


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float() - b.float()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def _net(ckpt: str | None):
    from fast_style.stylize import load_transformer
    from fast_style.transformer_net import TransformerNet

    if ckpt:
        return load_transformer(ckpt)
    torch.manual_seed(0)  # speed does not depend on the weights; PSNR does: pass --ckpt
    return TransformerNet().eval(), {"style_name": "random-init", "global_step": None}


def variants(ckpt: str | None, image: torch.Tensor, compile_: bool) -> dict[str, Callable]:
    """name -> a function stylising ``image`` ((3, H, W) uint8) into (3, H, W) float in [0, 1]."""
    from fast_style.export import export
    from fast_style.reference import ReferenceTransformerNet
    from fast_style.stylize import OnnxModel, TorchModel, load_model, native_bf16, stylize_photo
    from fast_style.transformer_net import set_kernel_routes

    net, info = _net(ckpt)
    x = TF.to_dtype(image, torch.float32, scale=True)[None]
    reference = ReferenceTransformerNet().eval()
    fp32_cl = TorchModel(_net(ckpt)[0], info, torch.device("cpu"), "fp32")
    bf16_cl = TorchModel(_net(ckpt)[0], info, torch.device("cpu"), "bf16")
    # What infer.py would run: precision=auto picks bf16 only where the hardware has it.
    default = load_model(ckpt) if ckpt else (bf16_cl if native_bf16(torch.device("cpu"))
                                             else fp32_cl)

    def eager(dtype=None):
        def run():
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bool(dtype)):
                return net(x)[0].float()
        return run

    def reference_run():
        with torch.inference_mode():
            return (reference(x * 255).clamp(0, 255) / 255)[0]

    # The same networks with aten's instance_norm instead of per-image batch norm.
    plain_cl = TorchModel(set_kernel_routes(_net(ckpt)[0], per_image_batch_norm=False), info,
                          torch.device("cpu"), "fp32")
    plain_nchw = set_kernel_routes(_net(ckpt)[0].eval(), per_image_batch_norm=False)

    def plain_nchw_run():
        with torch.inference_mode():
            return plain_nchw(x)[0]

    out: dict[str, Callable] = {
        "reference pytorch/examples fp32 eager": reference_run,
        "ours fp32 eager (NCHW)": eager(),
        "ours fp32 eager (NCHW) aten instance_norm": plain_nchw_run,
        "ours fp32 channels_last": lambda: fp32_cl(x)[0],
        "ours fp32 channels_last aten instance_norm": lambda: plain_cl(x)[0],
        "ours bf16 autocast (NCHW)": eager(torch.bfloat16),
        "ours bf16 channels_last": lambda: bf16_cl(x)[0],
    }
    with tempfile.TemporaryDirectory() as tmp:
        if ckpt:
            onnx_path = export(ckpt, "onnx", Path(tmp) / "model.onnx", check_size=(64, 64)).path
        else:
            from fast_style.callbacks import INFERENCE_FORMAT

            path = Path(tmp) / "random.pth"
            torch.save({"format": INFERENCE_FORMAT, "transformer_hparams": {},
                        "state_dict": net.state_dict(), "style_name": "random-init"}, path)
            onnx_path = export(path, "onnx", Path(tmp) / "model.onnx", check_size=(64, 64)).path
        onnx = OnnxModel(onnx_path, torch.device("cpu"))  # the session holds the model in memory
    out["onnxruntime fp32"] = lambda: onnx(x)[0]
    if compile_:
        # fp32: Inductor fuses the pads, norms and ReLUs around oneDNN's convolutions (freezing
        # folds the weights in); the route for CPUs without native bf16.
        # TorchModel(compile=True) is what infer.py's compile=true runs.
        fp32_compiled = TorchModel(_net(ckpt)[0], info, torch.device("cpu"), "fp32", compile=True)
        out["ours fp32 channels_last + torch.compile (freezing)"] = lambda: fp32_compiled(x)[0]
        default_compiled = TorchModel(_net(ckpt)[0], info, torch.device("cpu"),
                                      default.precision, compile=True)
        out["default path with compile=true (stylize_photo)"] = lambda: TF.to_dtype(
            stylize_photo(default_compiled, image), torch.float32, scale=True)
        compiled = torch.compile(bf16_cl.net, dynamic=False)

        def compiled_run():
            with torch.inference_mode():
                xc = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
                return compiled(xc)[0].float().clamp(0, 1)
        out["ours bf16 channels_last + torch.compile"] = compiled_run
    out["default path (stylize_photo)"] = lambda: TF.to_dtype(
        stylize_photo(default, image), torch.float32, scale=True)
    return out


def cmd_infer(args, overrides) -> dict:
    from fast_style.stylize import StyleOptions, load_model, stylize_photo

    if overrides:
        raise SystemExit(f"infer takes no key=value overrides (got {overrides})")
    height, width = _size(args.size)
    image = _photo(height, width, args.photo)
    result: dict = {"benchmark": "infer", "height": height, "width": width,
                    "weights": args.ckpt or "random-init", "runs": args.runs,
                    "warmup": args.warmup}
    if not args.compare:
        if args.ckpt:
            model = load_model(args.ckpt, compile=args.compile)
        else:
            from fast_style.stylize import TorchModel, native_bf16

            net, info = _net(None)
            cpu = torch.device("cpu")
            model = TorchModel(net, info, cpu, "bf16" if native_bf16(cpu) else "fp32",
                               compile=args.compile)
        options = StyleOptions()
        result["baseline_rss_mb"] = round(_peak_rss_mb(), 1)
        times = [_time(lambda: stylize_photo(model, image, options))
                 for _ in range(args.warmup + args.runs)]
        first, times = times[0], times[args.warmup:]
        tile = options.tile_for(height, width)
        result.update({"median_ms": round(statistics.median(times), 1), "compile": args.compile,
                       "first_ms": round(first, 1), "times_ms": [round(t, 1) for t in times],
                       "device": model.device.type, "precision": model.precision,
                       "tile": tile, "peak_rss_mb": round(_peak_rss_mb(), 1)})
        return {**result, **_machine()}

    runs = variants(args.ckpt, image, args.compile)
    outputs = {}
    for name, fn in runs.items():  # warm-up, and the outputs for PSNR
        for _ in range(max(1, args.warmup)):
            outputs[name] = fn()
        print(f"warm: {name}", flush=True)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.runs):  # round-robin: load on the machine hits every variant alike
        for name, fn in runs.items():
            times[name].append(_time(fn))
    base = outputs["ours fp32 eager (NCHW)"]
    ref_ms = statistics.median(times["reference pytorch/examples fp32 eager"])
    table = {}
    for name in runs:
        ms = statistics.median(times[name])
        table[name] = {"median_ms": round(ms, 1), "times_ms": [round(t, 1) for t in times[name]],
                       "speedup_vs_reference": round(ref_ms / ms, 2),
                       "psnr_vs_our_fp32_db": None if name.startswith("reference")
                       else round(_psnr(outputs[name], base), 1)}
        print(f"{name:45s} {ms:9.1f} ms  x{ref_ms / ms:5.2f}  "
              f"PSNR {table[name]['psnr_vs_our_fp32_db']} dB", flush=True)
    default = table["default path (stylize_photo)"]
    result.update({"median_ms": default["median_ms"],
                   "reference_median_ms": round(ref_ms, 1),
                   "speedup_vs_reference": default["speedup_vs_reference"],
                   "psnr_vs_our_fp32_db": default["psnr_vs_our_fp32_db"],
                   "variants": table, "peak_rss_mb": round(_peak_rss_mb(), 1)})
    return {**result, **_machine()}


def _machine() -> dict:
    from fast_style.hardware import cpu_info

    return {"torch": torch.__version__, "threads": torch.get_num_threads(), **cpu_info(),
            "loadavg_1min": round(os.getloadavg()[0], 2)}


def add_infer_parser(sub) -> None:
    infer = sub.add_parser("infer", help="ms per photo of the real inference path (infer.py)")
    infer.add_argument("--size", default="1024", help="N (square) or WxH, e.g. 3840x2160")
    infer.add_argument("--ckpt", default=None,
                       help=".pth/.ckpt to load (default: randomly initialised weights)")
    infer.add_argument("--photo", default=None, help="photo to scale to --size "
                       "(default: $FAST_STYLE_DATA/content/amber.jpg)")
    infer.add_argument("--runs", type=int, default=5, help="timed runs after warm-up")
    infer.add_argument("--warmup", type=int, default=1)
    infer.add_argument("--compare", action="store_true",
                       help="every variant and the pytorch/examples reference, round-robin")
    infer.add_argument("--compile", action="store_true",
                       help="torch.compile (infer.py's compile=true); with --compare: add "
                       "the compiled variants (slow to compile)")
    infer.add_argument("--json", action="store_true", help="(the JSON line is always printed)")
    infer.set_defaults(func=cmd_infer)
