"""A contact sheet of a multi-style network: each style, and blends between them.

    python scripts/multistyle_sheet.py ckpt=checkpoints/a+b+c/a+b+c.pth \
        photos=photo1.jpg,photo2.jpg out=outputs/multistyle_sheet.png [size=256] [steps=5]

One row per photo: the photo, then for each neighbouring pair of styles (a, b) the blends
a:1, a:0.75+b:0.25, ... (``steps`` of them), and the blend of all styles in equal parts; the
paintings themselves (from configs/style/ where a name is found) in a last row.
"""

import sys
from pathlib import Path

import torch

from fast_style import evaluation as ev
from fast_style.errors import FastStyleError, exit_on_user_error
from fast_style.image_io import load_image, save_image, to_pil
from fast_style.multistyle.selection import STYLE_CONFIGS
from fast_style.stylize import load_transformer, stylize


def blends(names: list[str], steps: int) -> list[tuple[str, torch.Tensor]]:
    n = len(names)
    columns = []
    for i in range(n - 1 if n > 2 else 1):
        a, b = i, (i + 1) % n
        for k in range(steps):
            t = k / (steps - 1)
            weights = torch.zeros(1, n)
            weights[0, a], weights[0, b] = 1 - t, t
            label = (names[a] if t == 0 else names[b] if t == 1
                     else f"{names[a]} {1 - t:.2g} + {names[b]} {t:.2g}")
            if not columns or not torch.equal(columns[-1][1], weights):
                columns.append((label, weights))
    if n > 2:
        columns.append((f"all {n}, equal", torch.full((1, n), 1 / n)))
    return columns


def main(argv: list[str]) -> None:
    opts = {"ckpt": None, "photos": None, "out": "outputs/multistyle_sheet.png", "size": "256",
            "steps": "5", "tile": "160"}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in opts:
            raise FastStyleError(f"unknown argument {arg!r}; usage: {__doc__.splitlines()[2]}")
        opts[key] = value
    if not opts["ckpt"] or not opts["photos"]:
        raise FastStyleError("usage: python scripts/multistyle_sheet.py ckpt=FILE photos=A,B")
    net, info = load_transformer(opts["ckpt"])
    names = info["style_names"]
    if len(names) < 2:
        raise FastStyleError(f"{opts['ckpt']} holds one style: nothing to blend")
    columns = blends(names, int(opts["steps"]))
    tiles = []
    for path in opts["photos"].split(","):
        photo = ev.load_photo(path, int(opts["size"]))
        tiles.append((to_pil(photo), Path(path).name))
        for label, weights in columns:
            net.set_style_weights(weights)
            tiles.append((to_pil(stylize(net, photo)), label))
    for name in names:
        try:
            tiles.append((load_image(ev.resolve_style(name, STYLE_CONFIGS)), f"painting: {name}"))
        except FastStyleError:
            pass
    sheet = ev.contact_sheet(tiles, columns=1 + len(columns), tile=int(opts["tile"]))
    save_image(sheet, opts["out"])
    print(f"wrote {opts['out']} ({len(columns)} style mixes per photo)")


if __name__ == "__main__":
    with exit_on_user_error():
        main(sys.argv[1:])
