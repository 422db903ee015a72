"""Border artifacts of a network's outputs: edge strips and thin inset lines, per margin.

    python scripts/measure_borders.py CKPT [--content DIR] [--val-count 20] [--margins 0,16,32]

Stylises the photos training held out (``data.val_count``; native size, whole image, fp32) once
per ``margin`` (px reflected around the photo before the network and cropped after: infer.py's
``margin=``) and reports fast_style.borders.border_report for each, beside the photos' own
figures (the noise level). Prints a table and, as the last line, JSON. benchmarks/borders.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import machine

from fast_style import evaluation as ev
from fast_style.borders import border_report
from fast_style.image_io import load_photo
from fast_style.stylize import StyleOptions, TorchModel, load_transformer, stylize_photo


def summary(report: dict) -> dict:
    """The worst side: largest |edge strip| and largest inset line, with where it lies."""
    worst_line = max(report.values(), key=lambda r: r["inset_line"])
    return {"max_abs_edge_strip": max(abs(r["edge_strip"]) for r in report.values()),
            "max_abs_edge_band": max(abs(r["edge_band"]) for r in report.values()),
            "max_inset_line": worst_line["inset_line"],
            "inset_line_px": worst_line["inset_line_px"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt")
    parser.add_argument("--content", default=None, help="photo folder (default: bsds300-train)")
    parser.add_argument("--val-count", type=int, default=20)
    parser.add_argument("--margins", default="0,16,32")
    args = parser.parse_args()
    content = args.content or Path(os.environ.get("FAST_STYLE_DATA", "data")) / "bsds300-train"
    photos = [load_photo(p).rgb for p in ev.select_photos(content, args.val_count)]
    net, info = load_transformer(args.ckpt)
    model = TorchModel(net, info, torch.device("cpu"), "fp32")
    results = {"photos": border_report([p.float() / 255 for p in photos])}
    for margin in (int(m) for m in args.margins.split(",")):
        options = StyleOptions(tile=0, margin=margin)
        outputs = [stylize_photo(model, p, options).float() / 255 for p in photos]
        results[f"margin {margin}"] = border_report(outputs)
    print(f"{'':14s} {'max |edge strip|':>17s} {'max |edge band|':>16s} {'max inset line':>15s}"
          "  where")
    for name, report in results.items():
        s = summary(report)
        print(f"{name:14s} {s['max_abs_edge_strip']:17.3f} {s['max_abs_edge_band']:16.3f} "
              f"{s['max_inset_line']:15.3f}  "
              f"{s['inset_line_px']} px in")
    print(json.dumps({"benchmark": "borders", "ckpt": str(args.ckpt), "step": info.get(
        "global_step"), "photos": len(photos), "size": "native",
        "summary": {k: summary(v) for k, v in results.items()}, "sides": results, **machine()}))


if __name__ == "__main__":
    main()
