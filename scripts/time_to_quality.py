"""Time-to-quality: how good a network `python train.py` has made after N minutes / steps.

    python scripts/time_to_quality.py run --name default --minutes 20 --every 25 \
        [--threads N] [--out DIR] -- [train.py overrides ...]
    python scripts/time_to_quality.py plot DIR/*.json --out curves.png

`run` starts the real train.py (style=--style, data.val_count=20 unless overridden), stops it
after --minutes of wall clock (SIGTERM: it saves after the step in progress; a run's own budget
in minutes is trainer.max_time=DD:HH:MM:SS among the overrides, which its learning-rate decay
follows), keeps a checkpoint every --every steps, and only
after training has ended judges every kept checkpoint on the 20 held-out photos at their native
size (481x321) with the fixed judge of fast_style/evaluation.py. Minutes are wall-clock from the
moment train.py was launched to the checkpoint file's write (start-up, VGG, style Grams and
validations included): what a person waits. Judging is not counted.

Also reported: the content loss of the painting pasted over each photo (resized to the photo),
the scale for "is the photo still legible" (content / painting_content), and the unchanged
photo's style loss. The last line of stdout is the JSON; it is also written to DIR/NAME.json.
`plot` draws total, content and style against minutes and steps for several runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from benchmark import machine

from fast_style import evaluation as ev
from fast_style.image_io import load_image, to_tensor
from fast_style.safe_io import atomic_write_text, load_torch_file
from fast_style.stylize import load_transformer, stylize

STYLE_CONFIGS = REPO / "configs" / "style"
DEFAULTS = ["data.val_count=20"]


def train(name: str, minutes: float, every: int, threads: int | None, out: Path,
          overrides: list[str], style: str) -> tuple[float, Path]:
    """Run train.py for ``minutes`` of wall clock; returns its start time and checkpoint folder."""
    ckpt_dir = out / name
    if not any(o.startswith("style=") for o in overrides):
        overrides = [f"style={style}", *overrides]
    command = [sys.executable, str(REPO / "train.py"), *DEFAULTS, *overrides,
               f"ckpt_dir={ckpt_dir}", f"hydra.run.dir={ckpt_dir}/hydra", "overwrite=true",
               "keep_checkpoints=true", f"checkpoint_every_n_steps={every}"]
    env = dict(os.environ)
    if threads:  # side-by-side runs: one core each, so both see the same machine
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    print("$", " ".join(command[1:]), file=sys.stderr, flush=True)
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # this script's own folder: a clean start
    ckpt_dir.mkdir(parents=True)
    start = time.time()
    with open(out / f"{name}.train.log", "w") as log:  # the progress bar, kept off the console
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            code = process.wait(timeout=minutes * 60)
        except subprocess.TimeoutExpired:
            # The limit is this script's, not trainer.max_time: that one is a run's own budget
            # and steers its learning-rate decay. SIGTERM stops train.py after the step in
            # progress, with last.ckpt saved (its exit status then says "stopped by a signal").
            process.send_signal(signal.SIGTERM)
            process.wait()
            code = 0 if (ckpt_dir / "last.ckpt").exists() else process.returncode
    if code:
        raise SystemExit(f"train.py failed (exit {code}): see {log.name}")
    return start, ckpt_dir


def snapshots(ckpt_dir: Path, start: float) -> list[tuple[int, float, Path]]:
    """(step, minutes since launch, path) of every kept checkpoint, in step order."""
    found = []
    for path in ckpt_dir.glob("step=*.ckpt"):
        match = re.fullmatch(r"step=(\d+)\.ckpt", path.name)
        if match:
            found.append((int(match[1]), (path.stat().st_mtime - start) / 60, path))
    last = ckpt_dir / "last.ckpt"  # the step where the run ended or was stopped
    if last.exists():
        step = load_torch_file(last)["global_step"]
        if step not in {s for s, _, _ in found}:
            found.append((step, (last.stat().st_mtime - start) / 60, last))
    return sorted(found)


def at_marks(found, marks: list[float]) -> list[tuple[int, float, Path]]:
    """The first checkpoint at or after each mark (minutes), and the last one: judging every
    checkpoint would take longer than the training (~1-2 s per native-size photo on the CPU)."""
    chosen = {min((s for s in found if s[1] >= mark), default=found[-1]) for mark in marks}
    return sorted(chosen | {found[-1]})


def judge_snapshots(found, photos: list[Path], style_image: Path, style_name: str,
                    device: str = "cpu") -> tuple[list[dict], dict]:
    ev.exact_fp32()  # fp32 without TF32: a GPU's scores read as the CPU's
    judge = ev.Judge.from_image(style_image).to(device)
    originals = [ev.load_photo(p).to(device) for p in photos]
    painting = to_tensor(load_image(style_image)).to(device)
    pasted = [torch.nn.functional.interpolate(painting[None], size=p.shape[-2:], mode="bilinear",
                                              antialias=True, align_corners=False)[0].clamp(0, 1)
              for p in originals]
    # The photos' VGG targets once, not again for every checkpoint.
    targets = [judge.content_target(p[None]) for p in originals]
    reference = {
        "painting_content": mean([judge.score(a, p, t)["content"]
                                  for a, p, t in zip(pasted, originals, targets)]),
        "photo_style": mean([judge.score(p, p, t)["style"] for p, t in zip(originals, targets)]),
    }
    points = []
    for step, minutes, path in found:
        net, info = load_transformer(path)
        net.to(device)
        if net.num_styles > 1:  # a multi-style network (e.g. finetune=): judge the named style
            names = info["style_names"]
            net.set_style_weights(torch.eye(len(names))[names.index(style_name)][None].to(device))
        with torch.inference_mode():
            scores = [judge.score(stylize(net, p), p, t) for p, t in zip(originals, targets)]
        point = {"step": step, "minutes": round(minutes, 3),
                 **{m: mean([s[m] for s in scores]) for m in ev.METRICS}}
        point["content_vs_painting"] = point["content"] / reference["painting_content"]
        points.append(point)
        print(f"step {step:5d}  {minutes:6.1f} min  total {ev.fmt(point['total'])}  content "
              f"{ev.fmt(point['content'])} ({point['content_vs_painting']:.2f} of the painting's)"
              f"  style {ev.fmt(point['style'])}", file=sys.stderr, flush=True)
    return points, reference


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def cmd_run(args, overrides: list[str]) -> None:
    out = Path(args.out).resolve()  # train.py runs from the repository root
    start, ckpt_dir = train(args.name, args.minutes, args.every, args.threads, out, overrides,
                            args.style)
    found = snapshots(ckpt_dir, start)
    if args.judge_minutes:
        found = at_marks(found, [float(m) for m in args.judge_minutes.split(",")])
    elif args.judge_steps:  # runs on different machines or thread counts compare at steps
        steps = {int(m) for m in args.judge_steps.split(",")}
        found = [f for f in found if f[0] in steps] + [found[-1]]
        found = sorted(set(found))
    data = Path(args.content or Path(os.environ.get("FAST_STYLE_DATA", "data")) / "bsds300-train")
    photos = ev.select_photos(data, args.val_count)
    style_image = ev.resolve_style(args.style, STYLE_CONFIGS)
    points, reference = judge_snapshots(found, photos, style_image, args.style)
    payload = {"benchmark": "time-to-quality", "name": args.name, "overrides": overrides,
               "minutes_budget": args.minutes, "photos": len(photos), "size": "native",
               "judge": ev.JUDGE_DESCRIPTION, **reference, "points": points, **machine(),
               "train_threads": args.threads or "all", "loadavg_at_end": os.getloadavg()[0],
               "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime(start))}
    if not args.keep_checkpoints:
        for path in ckpt_dir.glob("step=*.ckpt"):
            path.unlink()
    atomic_write_text(out / f"{args.name}.json", json.dumps(payload, indent=1) + "\n")
    print(json.dumps(payload))


def cmd_plot(args) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [json.loads(Path(f).read_text()) for f in args.results]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    for x_index, x_key in enumerate(("minutes", "step")):
        for m_index, metric in enumerate(("total", "content", "style")):
            ax = axes[x_index, m_index]
            for index, run in enumerate(runs):
                xs = [p[x_key] for p in run["points"]]
                # 20 colours, so that no two of a dozen runs share one
                ax.plot(xs, [p[metric] for p in run["points"]], marker=".", label=run["name"],
                        color=plt.cm.tab20(index % 20))
            if metric == "content" and runs:
                ax.axhline(0.6 * runs[0]["painting_content"], color="grey", ls="--", lw=0.8,
                           label="0.6 x painting over photo")
            for goal in (args.goals if metric == "total" else []):
                ax.axhline(goal, color="red", ls=":", lw=0.8)
            ax.set_yscale("log")
            ax.set_xlabel("wall-clock minutes since launch" if x_key == "minutes" else "step")
            ax.set_title(f"judge {metric} (20 held-out photos, native size)")
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    axes[0, 1].legend(fontsize=8)
    fig.suptitle(args.title)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


def main() -> None:
    argv = sys.argv[1:]
    overrides = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--name", required=True)
    run.add_argument("--minutes", type=float, required=True)
    run.add_argument("--every", type=int, default=25, help="steps between kept checkpoints")
    run.add_argument("--threads", type=int, default=None)
    run.add_argument("--out", default="outputs/time_to_quality")
    run.add_argument("--content", default=None, help="photo folder (default: bsds300-train)")
    run.add_argument("--val-count", type=int, default=20)
    run.add_argument("--style", default="starry_night",
                     help="the style trained (unless the overrides name style=) and judged")
    run.add_argument("--keep-checkpoints", action="store_true")
    run.add_argument("--judge-minutes", default="",
                     help="judge only the checkpoints nearest after these minutes, e.g. 5,10,20 "
                          "(default: every kept checkpoint)")
    run.add_argument("--judge-steps", default="",
                     help="judge only these steps (multiples of --every) and the last")
    plot = sub.add_parser("plot")
    plot.add_argument("results", nargs="+")
    plot.add_argument("--out", required=True)
    plot.add_argument("--title", default="time to quality")
    plot.add_argument("--goals", type=float, nargs="*", default=[4e5, 3e5])
    args = parser.parse_args(argv)
    if args.command == "run":
        cmd_run(args, overrides)
    else:
        cmd_plot(args)


if __name__ == "__main__":
    main()
