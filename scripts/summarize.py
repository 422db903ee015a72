"""One table and one picture for a Hydra sweep of train.py.

    python scripts/summarize.py multirun/2026-01-01_12-00-00 [--sort val/loss] [--photo P]

Reads every run's overrides (.hydra/overrides.yaml), resolved config and final metrics (its
TensorBoard events or CSV metrics.csv), and writes, in the multirun folder (or --out):
  summary.md         runs sorted by --sort, with the overrides that differ between runs
  summary.csv        the same, plus every override and the run folder
  contact_sheet.png  one photo stylised by each run's network, labelled (skip with --no-sheet)
The markdown table is printed as well.

A run's val/loss uses its own loss weights, so runs of a sweep over those weights do not compare
by it. --judge N scores every run's network on N held-out photos under the fixed judge of
fast_style/evaluation.py and adds judge/content, judge/style and judge/total (sort by
--sort judge/total).
"""

import argparse
import csv
import io
import sys
from pathlib import Path

import torch

from fast_style import evaluation as ev
from fast_style import sweeps
from fast_style.datasets import locate_photos
from fast_style.errors import FastStyleError, exit_on_user_error
from fast_style.image_io import save_image, to_pil
from fast_style.multistyle.selection import STYLE_CONFIGS
from fast_style.safe_io import atomic_write, atomic_write_text
from fast_style.styles import resolve_style_image
from fast_style.stylize import load_transformer, stylize


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("multirun", help="a multirun folder written by python train.py -m ...")
    parser.add_argument("--sort", default="val/loss", help="metric to sort by (default val/loss)")
    parser.add_argument("--descending", action="store_true", help="largest first")
    parser.add_argument("--out", help="where to write the reports (default: the multirun folder)")
    parser.add_argument("--photo", help="photo for the contact sheet (default: the first photo "
                                        "the first run held out for validation)")
    parser.add_argument("--size", type=int, default=256, help="photo long edge, px (default 256)")
    parser.add_argument("--tile", type=int, default=192, help="contact sheet tile, px")
    parser.add_argument("--no-sheet", action="store_true", help="tables only")
    parser.add_argument("--judge", type=int, default=0, metavar="N",
                        help="score each network on N held-out photos under the fixed judge")
    return parser.parse_args(argv)


def network_file(run: sweeps.Run) -> Path | None:
    ckpt_dir = Path(run.config.get("ckpt_dir", ""))
    name = (run.config.get("style") or {}).get("name")
    # A multi-style run's file is named after all its styles: last.ckpt finds it as well.
    for candidate in (ckpt_dir / f"{name}.pth", ckpt_dir / "last.ckpt"):
        if candidate.is_file():
            return candidate
    return None


def held_out_photos(runs: list[sweeps.Run], count: int) -> list[Path]:
    """The first photos that the first run (by launch order) held out of training."""
    for run in sorted(runs, key=lambda r: r.num):
        data = run.config.get("data") or {}
        if data.get("root") or data.get("folder"):
            # Where training found them (data.root, $FAST_STYLE_DATA, the cache); never downloads.
            root = locate_photos(data.get("root"), data.get("folder"), data.get("url"),
                                 download=False, archive_folders=data.get("archive_folders") or ())
            return ev.select_photos(root, data.get("val_count") or None, limit=count)
    raise FastStyleError("no run names its photos (data.root or data.folder): pass --photo PATH")


def judge_runs(runs: list[sweeps.Run], photos: list[Path], size: int) -> None:
    """Adds judge/content, judge/style, judge/total (means over ``photos``) to each run; for a
    network of several styles, means over its styles too (each against its own painting)."""
    ev.exact_fp32()
    judges: dict[Path, ev.Judge] = {}
    images = [ev.load_photo(p, size) for p in photos]
    for run in runs:
        path = network_file(run)
        style = run.config.get("style") or {}
        if path is None or not style.get("name"):
            continue
        net, info = load_transformer(path)
        names = info["style_names"]
        if len(names) == 1:
            styles = [(None, resolve_style_image(style["name"], style.get("image"),
                                                 style.get("file"), style.get("url"),
                                                 style.get("sha256")))]
        else:
            # Styles of one's own are found as the run found them: extra_styles' paths, and
            # the last listed style's own image (style=custom style.image=...).
            own = {str(k): str(v) for k, v in (run.config.get("extra_styles") or {}).items()}
            if style.get("image"):
                own[str(style["name"])] = str(style["image"])
            styles = [(torch.eye(len(names))[i:i + 1], ev.resolve_style(name, STYLE_CONFIGS, own))
                      for i, name in enumerate(names)]
        scores = []
        for weights, style_image in styles:
            judge = judges.setdefault(style_image, ev.Judge.from_image(style_image))
            net.set_style_weights(weights)
            scores += [judge.score(stylize(net, image), image) for image in images]
        for name in ev.METRICS:
            run.metrics[f"judge/{name}"] = ev.mean_std([s[name] for s in scores])["mean"]


def main(argv: list[str]) -> None:
    args = parse(argv)
    runs = sweeps.load_runs(args.multirun)
    if args.judge > 0:
        judge_runs(runs, held_out_photos(runs, args.judge), args.size)
    ranked = sweeps.sort_runs(runs, args.sort, args.descending)
    columns = sweeps.metric_columns(runs, args.sort)
    varying = sweeps.varying_overrides(runs)
    # Steps trained, as the network file records them (a stopped run has fewer than max_steps).
    steps = {}
    for run in runs:
        path = network_file(run)
        if path is not None:
            steps[run.directory] = load_transformer(path)[1].get("global_step")
    out = Path(args.out or args.multirun)
    out.mkdir(parents=True, exist_ok=True)

    def metric(run, name):
        value = run.metrics.get(name)
        return "" if value is None else ev.fmt(value)

    rows = [[rank, run.num, *[run.overrides.get(k, "") for k in varying],
             *[metric(run, c) for c in columns], steps.get(run.directory, ""),
             run.problem or ""]
            for rank, run in enumerate(ranked, 1)]
    header = ["rank", "job", *varying, *columns, "steps", "note"]
    title = (f"{len(runs)} run(s) of {Path(args.multirun).resolve()}, sorted by {args.sort} "
             f"({'largest' if args.descending else 'smallest'} first)")
    table = ev.markdown_table(header, rows)
    atomic_write_text(out / "summary.md", f"# Sweep summary\n\n{title}\n\n{table}\n")
    with atomic_write(out / "summary.csv") as raw, io.TextIOWrapper(raw, newline="") as f:
        writer = csv.writer(f)
        everything = sorted({k for run in runs for k in run.overrides})
        writer.writerow(["rank", "job", *everything, *columns, "steps", "directory", "note"])
        for rank, run in enumerate(ranked, 1):
            writer.writerow([rank, run.num, *[run.overrides.get(k, "") for k in everything],
                             *[run.metrics.get(c, "") for c in columns],
                             steps.get(run.directory, ""), run.directory,
                             run.problem or ""])
    print(f"{title}\n\n{table}\n\nwrote {out / 'summary.md'} and {out / 'summary.csv'}")

    if args.no_sheet:
        return
    photo_path = Path(args.photo) if args.photo else held_out_photos(runs, 1)[0]
    photo = ev.load_photo(photo_path, args.size)
    tiles = [(to_pil(photo), f"content: {photo_path.name}")]
    for rank, run in enumerate(ranked, 1):
        label = ", ".join(f"{k}={run.overrides.get(k, '')}" for k in varying) or run.label
        path = network_file(run)
        if path is None:
            print(f"job {run.num}: no network in {run.config.get('ckpt_dir')}; left off the sheet",
                  file=sys.stderr)
            continue
        net, info = load_transformer(path)
        names = info["style_names"]
        if len(names) > 1:  # a network of several styles shows its first
            net.set_style_weights(torch.eye(len(names))[:1])
            label += f" ({names[0]} of {len(names)} styles)"
        tiles.append((to_pil(stylize(net, photo)),
                      f"#{rank} (job {run.num}) {label}\n{args.sort} {metric(run, args.sort)}"))
    sheet = ev.contact_sheet(tiles, columns=min(4, len(tiles)), tile=args.tile)
    save_image(sheet, out / "contact_sheet.png", optimize=True)
    print(f"wrote {out / 'contact_sheet.png'}")


if __name__ == "__main__":
    with exit_on_user_error():
        main(sys.argv[1:])
