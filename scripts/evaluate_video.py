"""Measure how much a network's video flickers, in every stabilisation mode, and at what cost.

    python scripts/evaluate_video.py ckpt=checkpoints/starry_night/starry_night.pth input=clip.mp4

For each mode (frame: frame by frame, as photos; stats: instance-norm statistics shared over
time; denoise: the network sees each frame averaged with the previous ones along the optical
flow; features: the network's features blended with the previous frame's along the flow;
blend: blend of consecutive outputs where the input stood still; flow: the same after moving
the previous output along the optical flow; parts join with +, e.g. stats+denoise;
denoise+features is the default) it stylises every frame of the clip and reports:
- flicker: mean over frames of mean |(O_t - O_{t-1}) - (I_t - I_{t-1})| on [0, 1] pixels, the
  output's change beyond the input's own (fast_style/video/flicker.py); lower is steadier;
- warp error: mean |O_t - O_{t-1} warped along the input's optical flow| over the pixels seen in
  both frames (Farnebäck flow, forward-backward checked; flicker.py); lower is steadier;
- the judge's content / style / total loss (fast_style/evaluation.py) on ``judge_frames``
  frames spread over the clip, as saved (8-bit): stabilisation must not wash the style out;
- fps: frames stylised per second (network and stabilisation; decoding and encoding excluded),
  over all frames and, as steady fps, the median frame's after the first two (compile=true
  compiles during the first).
Prints markdown tables and, as the last line of stdout, one JSON object with a key per mode.

Options (key=value):
  ckpt=PATH            a .ckpt or .pth written by train.py (or an .onnx export)
  input=FILE           a video PyAV reads (mp4, mov, mkv, webm, avi, animated gif)
  modes=LIST           comma-separated (default: fast_style.video.stabilize.MODES)
  style=NAME|PATH      the judge's style image (default: the checkpoint's style)
  judge_frames=6       frames judged per mode (0: no judging)
  limit=N              only the first N frames
  strip=FILE.png       consecutive frames side by side: input, then each mode
  strip_start=N        the first frame of the strip (default: the middle of the clip)
  strip_frames=4       frames in the strip
  tile=320             strip tile size, px
  device=auto precision=auto threads=N
  compile=false        torch.compile the network (as infer.py's compile=true)
  stats_memory= denoise= blend= encoder_blend= residual_blend= motion_threshold= cut_threshold=
                       stabilisation settings (infer.py's
                       video.*; default: the same defaults)
"""

import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from benchmark import machine  # scripts/ is on the path when a script runs
from torchvision.transforms.v2 import functional as TF

from fast_style import evaluation as ev
from fast_style.errors import FastStyleError, exit_on_user_error
from fast_style.image_io import save_image
from fast_style.stylize import load_model
from fast_style.video.flicker import FlickerMeter, WarpingErrorMeter
from fast_style.video.io import read_frames
from fast_style.video.stabilize import MODES, StabilizeOptions, Stabilizer

STYLE_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "style"


@dataclass
class Options:
    ckpt: str | None = None
    input: str | None = None
    modes: str = ",".join(MODES)
    style: str | None = None
    judge_frames: int = 6
    limit: int | None = None
    strip: str | None = None
    strip_start: int | None = None
    strip_frames: int = 4
    tile: int = 320
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    compile: bool = False
    # Stabilisation settings (infer.py's video.*); None: the defaults
    stats_memory: float | None = None
    denoise: float | None = None
    blend: float | None = None
    encoder_blend: float | None = None
    residual_blend: float | None = None
    motion_threshold: float | None = None
    cut_threshold: float | None = None


def settings(opts: Options) -> dict:
    return {k: getattr(opts, k) for k in ("stats_memory", "denoise", "blend", "encoder_blend",
                                          "residual_blend", "motion_threshold", "cut_threshold")}


def run_mode(model, path: Path, mode: str, judged: set[int], strip: range, judge, opts):
    """Stylise the clip in one mode: flicker, fps, judge scores and the strip's frames."""
    stabilizer = Stabilizer(model, stabilize=StabilizeOptions.parse(mode, **settings(opts)))
    meter, warping = FlickerMeter(), WarpingErrorMeter()
    scores, kept, times = [], {}, []
    try:
        for index, frame in enumerate(read_frames(path, opts.limit)):
            start = time.perf_counter()
            output = stabilizer(frame)
            times.append(time.perf_counter() - start)
            meter.add(frame, output)
            warping.add(frame, output)
            if index in judged and judge is not None:
                scores.append(judge.score(TF.to_dtype(output, torch.float32, scale=True),
                                          TF.to_dtype(frame, torch.float32, scale=True)))
            if index in strip:
                kept[index] = output
    finally:
        stabilizer.close()
    # steady_fps leaves out the first two frames: compilation (compile=true) and warm-up.
    steady = times[2:]
    result = {"flicker": meter.value, "warp_error": warping.value,
              "fps": len(times) / sum(times) if times else None,
              "steady_fps": 1 / statistics.median(steady) if steady else None,
              "frames": len(times), "cuts": stabilizer.cuts}
    if scores:
        result.update({m: ev.mean_std([s[m] for s in scores]) for m in ev.METRICS})
    return result, kept


def main(argv: list[str]) -> None:
    opts = ev.parse_key_values(Options, argv, __doc__)
    if not opts.ckpt or not opts.input:
        raise FastStyleError("usage: python scripts/evaluate_video.py ckpt=CHECKPOINT "
                             "input=CLIP [modes=frame,stats+flow,...]")
    modes = [m.strip() for m in opts.modes.split(",") if m.strip()]
    if not modes:
        raise FastStyleError(f"modes={opts.modes}: name at least one, e.g. {','.join(MODES)}")
    for mode in modes:  # every mode checked before a frame is stylised
        StabilizeOptions.parse(mode, **settings(opts))
    if opts.threads:
        torch.set_num_threads(opts.threads)
    ev.exact_fp32()
    path = Path(opts.input)
    model = load_model(opts.ckpt, opts.device, opts.precision, compile=opts.compile)
    # One pass to count the frames (the container's count can be missing or wrong).
    inputs_total = sum(1 for _ in read_frames(path, opts.limit))
    judge, judged = None, set()
    if opts.judge_frames > 0:
        style_spec = opts.style or model.info.get("style_name")
        if not style_spec:
            raise FastStyleError(f"{opts.ckpt} names no style: pass style=NAME or style=PATH")
        style_image = ev.resolve_style(style_spec, STYLE_CONFIGS)
        judge = ev.Judge.from_image(style_image)
        n = min(opts.judge_frames, inputs_total)
        judged = {round(i * (inputs_total - 1) / max(1, n - 1)) for i in range(n)}
    start = opts.strip_start if opts.strip_start is not None else inputs_total // 2
    strip = range(start, min(inputs_total, start + opts.strip_frames)) if opts.strip else range(0)

    results, strips = {}, {}
    for mode in modes:
        print(f"{mode} ...", file=sys.stderr)
        results[mode], strips[mode] = run_mode(model, path, mode, judged, strip, judge, opts)
    reference = None
    if judge is not None:  # the unchanged clip: zero content loss, and the style loss to remove
        scores = [judge.score(*(TF.to_dtype(f, torch.float32, scale=True),) * 2)
                  for i, f in enumerate(read_frames(path, opts.limit)) if i in judged]
        reference = {m: ev.mean_std([s[m] for s in scores]) for m in ev.METRICS}

    first = next(iter(read_frames(path, 1)))
    print(f"{inputs_total} frames of {path} ({first.shape[2]}x{first.shape[1]}), checkpoint "
          f"{opts.ckpt} ({model.describe()}), {torch.get_num_threads()} thread(s)\n")
    print("flicker = mean |(O_t - O_t-1) - (I_t - I_t-1)| on [0, 1] pixels; warp error = mean "
          "|O_t - warped O_t-1| where the input's flow holds (lower is steadier for both)")
    if judge is not None:
        print(f"judge on {len(judged)} frames: {ev.JUDGE_DESCRIPTION}\n")
    base = results.get("frame", {}).get("flicker")
    base_warp = results.get("frame", {}).get("warp_error")
    header = ["mode", "flicker", "vs frame", "warp error", "vs frame", "content", "style",
              "total", "fps", "steady fps"]
    rows = []
    for mode, r in results.items():
        ratio = f"{r['flicker'] / base:.2f}" if base else "-"
        warp_ratio = f"{r['warp_error'] / base_warp:.2f}" if base_warp else "-"
        losses = [ev.fmt_mean_std(r[m]) if m in r else "-" for m in ev.METRICS]
        rows.append([mode, f"{r['flicker']:.5f}", ratio, f"{r['warp_error']:.5f}", warp_ratio,
                     *losses, f"{r['fps']:.2f}",
                     f"{r['steady_fps']:.2f}" if r["steady_fps"] else "-"])
    if reference:
        rows.append(["clip, unchanged", "-", "-", "-", "-",
                     *[ev.fmt_mean_std(reference[m]) for m in ev.METRICS], "-", "-"])
    print(ev.markdown_table(header, rows))

    if opts.strip and strip:
        frames = {i: f for i, f in enumerate(read_frames(path, opts.limit)) if i in strip}
        tiles = [(TF.to_pil_image(frames[i]), f"input, frame {i}") for i in strip]
        for mode in modes:
            tiles += [(TF.to_pil_image(strips[mode][i]), f"{mode}, frame {i}") for i in strip]
        save_image(ev.contact_sheet(tiles, columns=len(strip), tile=opts.tile), opts.strip)
        print(f"\nwrote strip {opts.strip}")

    payload = {"input": str(path), "frames": inputs_total,
               "size": [int(first.shape[2]), int(first.shape[1])], "ckpt": str(opts.ckpt),
               "model": model.describe(), "machine": machine(),
               "flicker": {mode: r["flicker"] for mode, r in results.items()},
               "warp_error": {mode: r["warp_error"] for mode, r in results.items()},
               "modes": results, "unchanged_clip": reference,
               "judge": ev.JUDGE_DESCRIPTION if judge is not None else None}
    print(ev.json_line(payload))


if __name__ == "__main__":
    with exit_on_user_error():
        main(sys.argv[1:])
