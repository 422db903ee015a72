"""Gatys et al.'s optimisation baseline under the fixed judge (see fast_style/evaluation.py).

    python scripts/optimize.py content=photo.jpg style=starry_night iters=50,100,300 size=256

L-BFGS-B on the pixels (kept in [0, 1]), starting from the content photo, minimising the judge's
total loss. Writes <out>/<photo>_lbfgs<N>.png for each N in iters, <out>/baseline.json (the
scores, reusable by evaluate.py baseline_from=<out>), a markdown table, and as the last line of
stdout one JSON object {"<N>": {"content": {"mean", "std"}, "style": .., "total": ..,
"ms_per_image": .., "iterations": ..}, ...}.

Options (key=value):
  content=PATH      a photo, or a folder of photos (searched recursively)
  style=NAME|PATH   a style config name (configs/style/) or an image file
  iters=50,100,300  L-BFGS iteration counts to snapshot (one run to the largest)
  size=N            scale each photo's long edge to N px (default: its own size)
  val_count=N       only the photos that training with data.val_count=N held out of content=
  limit=N           only the first N photos
  out=DIR           where images and baseline.json go (default outputs/optimize)
  history=100       L-BFGS correction pairs
  device=auto       auto | cpu | cuda
  threads=N         CPU threads for torch (default: torch's choice)
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from fast_style import evaluation as ev
from fast_style.errors import FastStyleError, exit_on_user_error

STYLE_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "style"


@dataclass
class Options(ev.JudgedPhotosOptions):
    iters: str = "50,100,300"
    out: str = "outputs/optimize"


def main(argv: list[str]) -> None:
    opts = ev.parse_key_values(Options, argv, __doc__)
    if not opts.content or not opts.style:
        raise FastStyleError("usage: python scripts/optimize.py content=PHOTO|FOLDER "
                             "style=NAME|PATH [iters=50,100,300] [size=N] [out=DIR]")
    iterations = ev.parse_counts(opts.iters)
    if not iterations:
        raise FastStyleError("iters= names no iteration counts, e.g. iters=50,100,300")
    if opts.threads:
        torch.set_num_threads(opts.threads)
    ev.exact_fp32()
    device = ev.pick_device(opts.device)
    photos = ev.select_photos(opts.content, opts.val_count, opts.limit)
    style_image = ev.resolve_style(opts.style, STYLE_CONFIGS)
    judge = ev.Judge.from_image(style_image).to(device)

    baseline = ev.optimise_photos(judge, photos, opts.size, iterations, out_dir=opts.out,
                                  history=opts.history,
                                  log=lambda line: print(line, file=sys.stderr))
    path = ev.write_baseline({**baseline, "device": str(device),
                              "threads": torch.get_num_threads()}, opts.out, style_image)
    summary = ev.baseline_summary(baseline)

    print(f"Gatys et al. optimisation (L-BFGS-B, pixels in [0, 1], from the photo), "
          f"{len(photos)} photo(s), size {opts.size or 'own'}, style {style_image}, on {device} "
          f"with {torch.get_num_threads()} thread(s)\n\nJudge: {ev.JUDGE_DESCRIPTION}\n")
    print(ev.markdown_table(
        ["L-BFGS iterations", "content", "style", "total", "seconds / image"],
        [[n, ev.fmt_mean_std(s["content"]), ev.fmt_mean_std(s["style"]),
          ev.fmt_mean_std(s["total"]), f"{s['ms_per_image'] / 1000:.1f}"]
         for n, s in summary.items()]))
    print()
    print(ev.markdown_table(
        ["photo", *[f"total @ {n}" for n in iterations], "early stop"],
        [[Path(r["photo"]).name, *[ev.fmt(e["total"]) for e in r["snapshots"]],
          # L-BFGS-B ends early only when a line search fails; say so beside the numbers
          "" if all(e["iterations"] == e["requested"] for e in r["snapshots"]) else r["stop"]]
         for r in baseline["photos"]]))
    print(f"\nwrote {len(photos) * len(iterations)} image(s) and {path}")
    print(ev.json_line({str(n): s for n, s in summary.items()}))


if __name__ == "__main__":
    with exit_on_user_error():
        main(sys.argv[1:])
