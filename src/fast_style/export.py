"""Export a trained transform network to ONNX or TorchScript, with any height and width, and
check the exported file against PyTorch before calling it done."""

from __future__ import annotations

import copy
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fast_style.errors import FastStyleError
from fast_style.multistyle.export import OnnxStyledNet, ScriptStyledNet, check_weights
from fast_style.safe_io import atomic_save
from fast_style.stylize import ONNX_FORMAT, load_transformer
from fast_style.transformer_net import (
    MIN_SIDE,
    SIZE_MULTIPLE,
    TransformerNet,
    activate,
    pad_for_export,
)

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
# Exported files are checked on a random image of this size (height, width): photo-sized, so
# that any drift that grows with the image shows.
CHECK_SIZE = (768, 1024)
TOLERANCE = 1e-3
OPSET = 18


def plain_copy(net: TransformerNet) -> TransformerNet:
    """A copy of ``net`` whose layers are stock torch.nn classes (same weights).

    Our InstanceNorm2d / ReflectionPad2d subclasses exist for tiled inference and autocast; the
    stock classes map onto ONNX's InstanceNormalization and Pad, which runtimes optimise, and
    TorchScript cannot compile the subclasses' super() calls anyway.
    """
    net = copy.deepcopy(net).float().eval()
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.InstanceNorm2d) and type(child) is not nn.InstanceNorm2d:
                stock = nn.InstanceNorm2d(child.num_features, eps=child.eps, affine=child.affine)
                stock.load_state_dict(child.state_dict())
                setattr(parent, name, stock)
            elif isinstance(child, nn.ReflectionPad2d) and type(child) is not nn.ReflectionPad2d:
                setattr(parent, name, nn.ReflectionPad2d(child.padding))
    return net


class _Exportable(nn.Module):
    """TransformerNet's computation for export. The padding to a multiple of 4 (at least 16 px)
    is written without a Python branch, always padding (by 0 if need be), so that exporters keep
    it symbolic in height and width instead of fixing it for the example's size."""

    def __init__(self, net: TransformerNet):
        super().__init__()
        net = plain_copy(net)
        self.encoder, self.residuals, self.decoder = net.encoder, net.residuals, net.decoder
        self.output_activation = net.output_activation
        # Attributes, not module constants: TorchScript cannot read Python globals.
        self.min_side, self.multiple = MIN_SIDE, SIZE_MULTIPLE

    def run(self, x: torch.Tensor, h: int, w: int, pad_h: int, pad_w: int) -> torch.Tensor:
        padded = pad_for_export(x, pad_h, pad_w, self.multiple)  # as pad_to_multiple
        return activate(self.decoder(self.residuals(self.encoder(padded)))[..., :h, :w],
                        self.output_activation, x)


class OnnxNet(_Exportable):
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2], image.shape[-1]
        # sym_max keeps max() symbolic under torch.export (Python's max would specialise it).
        pad_h = torch.sym_max(self.min_side - h, 0)
        pad_w = torch.sym_max(self.min_side - w, 0)
        return self.run(image, h, w, pad_h, pad_w)


class ScriptNet(_Exportable):
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2], image.shape[-1]
        pad_h = max(self.min_side - h, 0)
        pad_w = max(self.min_side - w, 0)
        return self.run(image, h, w, pad_h, pad_w)


@dataclass
class ExportResult:
    path: Path
    max_abs_error: float
    check_size: tuple[int, int]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.max_abs_error < TOLERANCE


def _export_onnx(net: TransformerNet, info: dict, path: Path) -> None:
    import onnx

    example = torch.rand(1, 3, 61, 67)  # odd sizes: the padding path is part of the graph
    height = torch.export.Dim("height", min=1, max=32768)
    width = torch.export.Dim("width", min=1, max=32768)
    # Several styles: the style weights are a second input (multistyle/export.py).
    multi = net.num_styles > 1
    module = OnnxStyledNet(net) if multi else OnnxNet(net)
    inputs = (example, check_weights(net.num_styles)) if multi else (example,)
    input_names = ["image", "style_weights"] if multi else ["image"]
    shapes = {"image": {2: height, 3: width}, **({"style_weights": None} if multi else {})}
    # The exporter narrates every step on stdout/logging; a CLI tool prints its own summary.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module.eval(), inputs, dynamo=True,
                                    input_names=input_names, output_names=["stylised"],
                                    dynamic_shapes=shapes, opset_version=OPSET, verbose=False)
    model = program.model_proto
    meta = {"format": ONNX_FORMAT, "style_name": str(info.get("style_name") or ""),
            "global_step": str(info.get("global_step") if info.get("global_step") is not None
                               else ""),
            "input": "image: float32 (1, 3, H, W) RGB in [0, 1], any H and W",
            "output": "stylised: float32 (1, 3, H, W) RGB in [0, 1]"}
    if multi:
        meta["style_names"] = ",".join(info["style_names"])
        meta["input"] += (f"; style_weights: float32 (1, {net.num_styles}), one weight per "
                          "style of style_names, summing to 1 (one-hot: one style)")
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    atomic_save(path, lambda f: f.write(model.SerializeToString()))


def _export_torchscript(net: TransformerNet, info: dict, path: Path) -> None:
    extra = {"format": "fast-style/transformer-torchscript-v1",
             "style_name": str(info.get("style_name") or ""),
             "global_step": str(info.get("global_step"))}
    if net.num_styles > 1:  # forward(image, style_weights); the names in order
        module: nn.Module = ScriptStyledNet(net)
        extra["style_names"] = ",".join(info["style_names"])
    else:
        module = ScriptNet(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still asked for
        scripted = torch.jit.script(module.eval())
    atomic_save(path, lambda f: torch.jit.save(scripted, f, _extra_files=extra))


def run_exported(path: Path, fmt: str, image: torch.Tensor,
                 style_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Run an exported file the way a user would: onnxruntime, or torch.jit.load."""
    extra = () if style_weights is None else (style_weights,)
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        (out,) = session.run(None, dict(zip(names, [t.numpy() for t in (image, *extra)])))
        return torch.from_numpy(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        return module(image, *extra)


def export(ckpt: str | Path, fmt: str = "onnx", out: str | Path | None = None,
           check_size: tuple[int, int] = CHECK_SIZE, seed: int = 0) -> ExportResult:
    """Write ``ckpt``'s network as ``fmt`` and measure its parity with PyTorch (fp32, eager) on a
    random ``check_size`` image. The caller decides what to do when ``result.ok`` is False."""
    if fmt not in FORMATS:
        raise FastStyleError(f"format={fmt} is not supported; choose one of {', '.join(FORMATS)}")
    net, info = load_transformer(ckpt)
    path = Path(out) if out else Path(ckpt).with_suffix(FORMATS[fmt])
    if path.resolve() == Path(ckpt).resolve():
        raise FastStyleError(f"output {path} would overwrite the checkpoint: pass out=")
    if path.is_dir():
        raise FastStyleError(f"out={path} is a folder: pass a file name such as "
                             f"{path / Path(ckpt).with_suffix(FORMATS[fmt]).name}")
    start = time.perf_counter()
    try:
        (_export_onnx if fmt == "onnx" else _export_torchscript)(net, info, path)
    except FastStyleError:
        raise
    except Exception as e:  # noqa: BLE001 - exporter failures are many and deep
        first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise FastStyleError(f"{fmt} export of {ckpt} failed: {first}") from None
    seconds = time.perf_counter() - start
    image = torch.rand(1, 3, *check_size, generator=torch.Generator().manual_seed(seed))
    # Several styles: checked on a blend of all of them (the mixing is part of the graph).
    weights = check_weights(net.num_styles, seed) if net.num_styles > 1 else None
    with torch.inference_mode():
        expected = net(image, weights)
    error = (run_exported(path, fmt, image, weights) - expected).abs().max().item()
    return ExportResult(path, error, check_size, seconds)
