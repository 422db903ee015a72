"""The ``video`` subcommand of scripts/benchmark.py: what the stabiliser costs a frame.

    python scripts/benchmark.py video --size 1920x1080 --frames 10 --width 4   # its own cost
    python scripts/benchmark.py video --size 640x360 --frames 16 --ckpt X      # with a real net

A pan over a real photo (content/amber.jpg, sliding 2 px right and 1 px down a frame), in
memory, through ``Stabilizer`` in each mode (default: the default, ``denoise+features``, and
``frame``), round-robin for ``--rounds``; each round a fresh Stabilizer over the whole clip.
Per mode: the median ms a frame after the first two of a round (the first is a shot's start,
without flow) and a digest of the frames it painted, so two versions of the code can be shown
to paint the same frames. ``overhead_ms``: the default's median less frame-by-frame's, what
the stabiliser adds to the network. On a GPU that is most of a 1080p frame's time
(benchmarks/gpu.md); ``--width 4`` shrinks the network so that its share shows on a CPU too.
"""

from __future__ import annotations

import hashlib
import statistics
import time

import torch
from benchmark_infer import _machine, _photo, _size  # scripts/ is not a package


def cmd_video(args, overrides) -> dict:
    from fast_style.stylize import StyleOptions, TorchModel, load_model
    from fast_style.transformer_net import TransformerNet
    from fast_style.video.stabilize import StabilizeOptions, Stabilizer

    if overrides:
        raise SystemExit(f"video takes no key=value overrides (got {overrides})")
    if args.frames < 3:
        raise SystemExit("--frames must be at least 3: the first two of a round are not timed")
    height, width = _size(args.size)
    n = args.frames
    base = _photo(height + n, width + 2 * n, args.photo)
    clip = [base[:, i:i + height, 2 * i:2 * i + width].contiguous() for i in range(n)]
    if args.ckpt:
        model = load_model(args.ckpt)
    else:
        torch.manual_seed(0)
        net = TransformerNet(width=args.width).eval()
        model = TorchModel(net, {"style_name": "benchmark"}, torch.device("cpu"), "fp32")
    modes = args.modes.split(",")
    times: dict[str, list[float]] = {m: [] for m in modes}
    digests: dict[str, str] = {}
    for _ in range(args.rounds):
        for mode in modes:
            stabilizer = Stabilizer(model, StyleOptions(), StabilizeOptions.parse(mode))
            digest = hashlib.sha256()
            for i, frame in enumerate(clip):
                start = time.perf_counter()
                out = stabilizer(frame)
                if i >= 2:
                    times[mode].append((time.perf_counter() - start) * 1000)
                digest.update(out.numpy().tobytes())
            stabilizer.close()
            digests[mode] = digest.hexdigest()[:16]
    median = {m: round(statistics.median(t), 1) for m, t in times.items()}
    result = {"benchmark": "video", "height": height, "width": width, "frames": n,
              "rounds": args.rounds, "weights": args.ckpt or f"random-init, width {args.width}",
              "device": model.device.type, "precision": model.precision,
              "median_ms_per_frame": median, "frames_digest": digests}
    if "true" in median and "frame" in median:
        result["overhead_ms"] = round(median["true"] - median["frame"], 1)
    for mode in modes:
        print(f"{mode:24s} {median[mode]:9.1f} ms a frame  frames {digests[mode]}", flush=True)
    return {**result, **_machine()}


def add_video_parser(sub) -> None:
    video = sub.add_parser("video", help="ms a frame of the video stabiliser, per mode")
    video.add_argument("--size", default="1920x1080", help="WxH of the frames")
    video.add_argument("--frames", type=int, default=10)
    video.add_argument("--rounds", type=int, default=2, help="round-robin rounds over the modes")
    video.add_argument("--modes", default="true,frame",
                       help="stabilize= values, comma-separated (true: the default)")
    video.add_argument("--ckpt", default=None, help=".pth/.ckpt (default: random init)")
    video.add_argument("--width", type=int, default=32,
                       help="random-init network's width (4: the stabiliser's own cost shows)")
    video.add_argument("--photo", default=None, help="photo to pan over "
                       "(default: $FAST_STYLE_DATA/content/amber.jpg)")
    video.set_defaults(func=cmd_video)
