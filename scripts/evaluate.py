"""Judge a trained network on photos, optionally beside Gatys et al.'s optimisation.

    python scripts/evaluate.py ckpt=checkpoints/starry_night/starry_night.pth \
        content=photos/ style=starry_night [size=256] [baseline=100]

Stylises every photo (at its own size, or scaled to a long edge of size=) and scores it under the
fixed judge of fast_style/evaluation.py (Caffe VGG-16, Johnson et al.'s losses and weights), which
ignores the run's own loss settings, so that any two runs compare. Prints markdown tables and, as
the last line of stdout, one JSON object: {"content": {"mean", "std"}, "style": .., "total": ..,
"ms_per_image": .., ...} for the network, with "baseline" holding the optimisation's figures.

Options (key=value):
  ckpt=PATH          a Lightning .ckpt or the small <style>.pth written by train.py
  content=PATH       a photo, or a folder of photos (searched recursively)
  style=NAME|PATH    a style config name or an image file (default: the checkpoint's style);
                     for a network of several styles: one of its styles (default: every one,
                     judged against its own painting, then the mean over styles)
  paintings=N:PATH,..  the paintings of a multi-style network's own styles (style=custom or
                     extra_styles: names with no style config), e.g. paintings=mine:me.jpg
  size=N             scale each photo's long edge to N px (default: its own size)
  val_count=N        only the photos that training with data.val_count=N held out of content=
  limit=N            only the first N photos
  baseline=N[,M..]   also run L-BFGS for N (M, ...) iterations on each photo, under the same judge
  baseline_from=DIR  reuse the out= folder of an optimize.py run on the same photos instead
  out=DIR            save the stylised images (and the baseline's) here
  sheet=FILE.png     a contact sheet: photo | network | L-BFGS ... per row
  tile=160           contact sheet tile size, px
  sheet_colors=N     save the sheet with an N-colour palette (e.g. 256: a third of the bytes)
  history=100        L-BFGS correction pairs
  device=auto        auto | cpu | cuda
  threads=N          CPU threads for torch (default: torch's choice)
"""

import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from PIL import Image

from fast_style import evaluation as ev
from fast_style.errors import FastStyleError, exit_on_user_error
from fast_style.image_io import load_image, save_image, to_pil
from fast_style.stylize import load_transformer, stylize

STYLE_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "style"


@dataclass
class Options(ev.JudgedPhotosOptions):
    ckpt: str | None = None
    baseline: str = ""
    baseline_from: str | None = None
    out: str | None = None
    sheet: str | None = None
    tile: int = 160
    sheet_colors: int = 0
    paintings: str | None = None


def run_network(net, judge, photos, size, device):
    """Stylise and judge each photo; time the network alone (after one warm-up pass)."""
    net = net.to(device)
    stylize(net, ev.load_photo(photos[0], size))  # first call pays for allocations and kernels
    outputs, scores, ms = [], [], []
    for path in photos:
        photo = ev.load_photo(path, size)
        ev.sync(device)
        start = time.perf_counter()
        image = stylize(net, photo).cpu()
        ev.sync(device)
        ms.append(1000 * (time.perf_counter() - start))
        outputs.append(image)
        scores.append(judge.score(image, photo))
    return outputs, scores, ms


def main(argv: list[str]) -> None:
    # Baseline images without out= go to a scratch folder that lives only as long as this run.
    with tempfile.TemporaryDirectory(prefix="fast_style_lbfgs_") as scratch:
        evaluate(ev.parse_key_values(Options, argv, __doc__), Path(scratch))


def evaluate(opts: Options, scratch: Path) -> None:
    if not opts.ckpt or not opts.content:
        raise FastStyleError("usage: python scripts/evaluate.py ckpt=CHECKPOINT "
                             "content=PHOTO|FOLDER [style=NAME|PATH] [size=N] [baseline=100]")
    iterations = ev.parse_counts(opts.baseline)
    if opts.baseline_from and not iterations:
        raise FastStyleError("baseline_from= needs baseline=N[,M..]: the iteration counts to show")
    if opts.threads:
        torch.set_num_threads(opts.threads)
    ev.exact_fp32()
    device = ev.pick_device(opts.device)
    net, info = load_transformer(opts.ckpt)
    photos = ev.select_photos(opts.content, opts.val_count, opts.limit)
    names = info["style_names"]
    if len(names) == 1:
        style_spec = opts.style or info.get("style_name")
        if not style_spec:
            raise FastStyleError(f"{opts.ckpt} names no style: pass style=NAME or style=PATH")
        print(ev.json_line(judge_network(opts, net, info, style_spec, photos, device, scratch)))
        return
    # Several styles: each against its own painting (found by its style config name).
    if opts.style and opts.style not in names:
        raise FastStyleError(f"style {opts.style!r} is not in this network; it knows "
                             f"{', '.join(names)}")
    results = {}
    for index, name in enumerate(names):
        if opts.style and name != opts.style:
            continue
        net.set_style_weights(torch.eye(len(names))[index:index + 1])
        print(f"\n## style {name}\n")
        per_style = replace(opts, out=opts.out and str(Path(opts.out) / name),
                            sheet=opts.sheet and str(Path(opts.sheet).with_suffix(f".{name}.png")))
        results[name] = judge_network(per_style, net, info, name, photos, device,
                                      scratch / name)
    mean = {m: sum(r[m]["mean"] for r in results.values()) / len(results) for m in ev.METRICS}
    print(f"\nmean over {len(results)} style(s): "
          + ", ".join(f"{m} {ev.fmt(v)}" for m, v in mean.items()))
    print(ev.json_line({"styles": results, "mean": mean, "ckpt": str(opts.ckpt),
                        "step": info.get("global_step")}))


def judge_network(opts: Options, net, info: dict, style_spec: str, photos: list[Path],
                  device, scratch: Path) -> dict:
    """Judge ``net`` (conditioned on one style) on ``photos``; print the tables, return the JSON."""
    iterations = ev.parse_counts(opts.baseline)
    style_image = ev.resolve_style(style_spec, STYLE_CONFIGS, ev.parse_paintings(opts.paintings))
    judge = ev.Judge.from_image(style_image).to(device)

    outputs, scores, ms = run_network(net, judge, photos, opts.size, device)
    network = ev.summarise(scores, ms)
    originals = [ev.load_photo(p, opts.size) for p in photos]
    # The unchanged photo: zero content loss, and the style loss stylisation has to remove.
    reference_scores = [judge.score(p, p) for p in originals]
    reference = ev.summarise(reference_scores, [0.0] * len(photos))

    baseline = None
    image_dir = Path(opts.baseline_from or opts.out or scratch)
    if iterations and opts.baseline_from:
        baseline = ev.read_baseline(opts.baseline_from, photos, opts.size, style_image, iterations)
    elif iterations:
        baseline = ev.optimise_photos(judge, photos, opts.size, iterations, out_dir=image_dir,
                                      history=opts.history,
                                      log=lambda line: print(line, file=sys.stderr))
        if opts.out:  # reusable: evaluate.py baseline_from=<out> skips the optimisation next time
            ev.write_baseline({**baseline, "device": str(device),
                               "threads": torch.get_num_threads()}, opts.out, style_image)
    baseline_stats = ev.baseline_summary(baseline) if baseline else {}

    step = info.get("global_step")
    label = f"network (step {step})" if step is not None else "network"
    rows = [["photo, unchanged", *[ev.fmt_mean_std(reference[m]) for m in ev.METRICS], "-"],
            [label, *[ev.fmt_mean_std(network[m]) for m in ev.METRICS],
             f"{network['ms_per_image']:.1f}"]]
    rows += [[f"L-BFGS, {n} iterations", *[ev.fmt_mean_std(s[m]) for m in ev.METRICS],
              f"{s['ms_per_image']:.0f}"] for n, s in baseline_stats.items()]
    print(f"{len(photos)} photo(s) from {opts.content}, size {opts.size or 'own'}, style "
          f"{style_image}, checkpoint {opts.ckpt}, on {device} with {torch.get_num_threads()} "
          f"thread(s)\n\nJudge: {ev.JUDGE_DESCRIPTION}\n")
    header = ["method", "content", "style", "total (mean ± std)", "ms / image"]
    print(ev.markdown_table(header, rows))
    print()
    per_photo = []
    for i, path in enumerate(photos):
        row = [path.name, "x".join(map(str, originals[i].shape[:0:-1])), ev.fmt(scores[i]["total"])]
        if baseline:
            row += [ev.fmt(e["total"]) for e in baseline["photos"][i]["snapshots"]]
        per_photo.append(row)
    print(ev.markdown_table(["photo", "size", "network total",
                             *[f"L-BFGS {n} total" for n in baseline_stats]], per_photo))

    if opts.out:
        for path, image in zip(photos, outputs):
            save_image(image, Path(opts.out) / f"{ev.unique_stem(path, photos)}_network.png")
    if opts.sheet:
        tiles = []
        for i, path in enumerate(photos):
            tiles.append((to_pil(originals[i]),
                          f"{path.name}, unchanged\ntotal {ev.fmt(reference_scores[i]['total'])}"))
            tiles.append((to_pil(outputs[i]), f"{label}\ntotal {ev.fmt(scores[i]['total'])}"))
            for entry in (baseline["photos"][i]["snapshots"] if baseline else []):
                if not entry.get("image") or not (image_dir / entry["image"]).is_file():
                    raise FastStyleError(f"the contact sheet needs the baseline's images, missing "
                                         f"from {image_dir}")
                tiles.append((load_image(image_dir / entry["image"]),
                              f"L-BFGS {entry['iterations']} it.\ntotal {ev.fmt(entry['total'])}"))
        tiles.append((load_image(style_image), f"style: {Path(style_image).stem}"))
        sheet = ev.contact_sheet(tiles, columns=2 + len(baseline_stats), tile=opts.tile)
        if opts.sheet_colors:
            sheet = sheet.quantize(opts.sheet_colors, method=Image.Quantize.MEDIANCUT,
                                   dither=Image.Dither.FLOYDSTEINBERG)
        save_image(sheet, opts.sheet, optimize=True)
        print(f"\nwrote contact sheet {opts.sheet}")

    payload = {**network, "images": len(photos), "size": opts.size, "step": step,
               "ckpt": str(opts.ckpt), "style_image": str(style_image), "device": str(device),
               "threads": torch.get_num_threads(), "judge": ev.JUDGE_DESCRIPTION,
               "unchanged_photo": {m: reference[m] for m in ev.METRICS}}
    if baseline_stats:
        payload["baseline"] = {str(n): s for n, s in baseline_stats.items()}
    return payload


if __name__ == "__main__":
    with exit_on_user_error():
        main(sys.argv[1:])
