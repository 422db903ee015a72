"""Inference: load a trained transform network and stylise photos of any size in bounded memory.

Pieces, in the order a photo meets them:
- ``load_model``: a Lightning .ckpt, the small inference .pth or an exported .onnx, on a device
  and in a precision; PyTorch files are read with ``weights_only=True`` (untrusted input).
- ``stylize_photo``: the whole image in one pass when it is small enough, else tile by tile with
  overlap and feathered blending (``stylize_tiled``). Instance norm normalises every tile with
  the *whole image's* statistics, measured exactly, so a tiled result matches the untiled one.
- ``finish``: colour preservation (stylised luminance, original chroma) and strength (a blend
  with the original), done in row bands so no full-size temporaries pile up.
"""

from __future__ import annotations

import math
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.transforms.v2 import functional as TF

from fast_style.errors import FastStyleError
from fast_style.safe_io import is_url, load_torch_file
from fast_style.transformer_net import (
    SIZE_MULTIPLE,
    InstanceNorm2d,
    TransformerNet,
    pad_to_multiple,
    padded_length,
)

TRANSFORMER_KEYS = ("width", "num_residual_blocks", "norm", "upsample", "output_activation",
                    "num_styles")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# The small inference file train.py writes (callbacks.InferenceFileWriter). Defined here, not in
# callbacks.py, so that inference never imports Lightning (seconds of start-up, ~800 MB RSS).
INFERENCE_FORMAT = "fast-style/transformer-v1"
# A network of several styles (multistyle/): ``style_names`` lists them in the order of the
# network's style weights. One style keeps writing v1.
INFERENCE_FORMAT_MULTI = "fast-style/transformer-v2"
# Written into exported ONNX files (export.py) so that loading can tell ours from any other model.
ONNX_FORMAT = "fast-style/transformer-onnx-v1"

# Above this many pixels ``tile="auto"`` tiles. A whole 2048x2048 pass peaks near 2 GB in bf16 on
# CPU (activations of 32-64 channels at full resolution); tiles keep 4K and 8K photos far below.
AUTO_TILE_PIXELS = 2048 * 2048
DEFAULT_TILE = 1024
DEFAULT_OVERLAP = 64
# On a GPU a whole pass is faster than tiles (3840x2160 fp16 on an H200: infer.py's path 220 ms
# whole, 331 ms in 1024 px tiles). The whole pass peaked at 3,680 MiB for 3904x2224 px (4K
# with its margin): ~444 bytes a pixel in fp16, so ~900 in fp32 (benchmarks/gpu.md).
GPU_BYTES_PER_PIXEL = 900


def auto_tile_pixels(device: torch.device | None) -> int:
    """``tile=auto``'s threshold on ``device``: 2048x2048 on the CPU; on a GPU, what half its
    free memory holds in one fp32 pass (~80 MP on a 141 GB card, ~13 MP on 24 GB)."""
    if device is None or device.type != "cuda":
        return AUTO_TILE_PIXELS
    free, _ = torch.cuda.mem_get_info(device)
    return max(AUTO_TILE_PIXELS, free // 2 // GPU_BYTES_PER_PIXEL)


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------

def _read_checkpoint(path: Path) -> dict:
    if path.is_file() and _is_torchscript(path):
        # torch.jit.load would run the file's own code: not for untrusted input (the reason every
        # other file here loads with weights_only). The export is for runtimes without Python.
        raise FastStyleError(f"{path} is a TorchScript export, made for runtimes without Python "
                             "(LibTorch C++, mobile): stylise with the .pth or .ckpt it was "
                             "exported from, or an .onnx export")
    payload = load_torch_file(path, hint="pass a .ckpt or .pth written by train.py, or an .onnx "
                                         "export")
    if not isinstance(payload, dict):
        raise FastStyleError(f"{path} is not a fast-style checkpoint")
    return payload


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive: a zip holding a code/ folder beside the tensors."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_transformer(path: str | Path) -> tuple[TransformerNet, dict]:
    """Rebuild the transform net from a Lightning .ckpt or the small inference .pth.

    Returns the network (eval mode, CPU, fp32) and a small dict of facts: ``style_name``,
    ``style_names`` (every style the network holds, in order) and ``global_step``.
    """
    path = Path(path)
    payload = _read_checkpoint(path)
    if payload.get("format") in (INFERENCE_FORMAT, INFERENCE_FORMAT_MULTI):
        hparams, state = payload.get("transformer_hparams"), payload.get("state_dict")
        names = payload.get("style_names") or [payload.get("style_name") or "style"]
        info = {"style_name": payload.get("style_name"), "global_step": payload.get("global_step")}
    elif "hyper_parameters" in payload and "state_dict" in payload:
        all_hparams = payload["hyper_parameters"]
        if not isinstance(all_hparams, dict) or not all(k in all_hparams
                                                        for k in ("style_name", "width")):
            raise FastStyleError(f"{path} is a Lightning checkpoint of something other than "
                                 "fast-style's StyleTransferSystem")
        hparams = {k: all_hparams[k] for k in TRANSFORMER_KEYS if k in all_hparams}
        state = {k.removeprefix("transformer."): v for k, v in payload["state_dict"].items()
                 if k.startswith("transformer.")}
        trained = all_hparams["style_name"]
        names = [*(all_hparams.get("frozen_styles") or []),
                 *([trained] if isinstance(trained, str) else trained)]
        if len(names) > 1:
            hparams["num_styles"] = len(names)
        info = {"style_name": "+".join(map(str, names)), "global_step": payload.get("global_step")}
    else:
        raise FastStyleError(f"{path} is not a fast-style checkpoint (no transform-net weights)")
    if not isinstance(hparams, dict) or not isinstance(state, dict):
        raise FastStyleError(f"{path} is not a fast-style checkpoint (malformed inference file)")
    if set(hparams) - set(TRANSFORMER_KEYS):
        raise FastStyleError(f"{path}: unknown network settings "
                             f"{', '.join(map(str, sorted(set(hparams) - set(TRANSFORMER_KEYS))))}")
    step, style = info["global_step"], info["style_name"]
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise FastStyleError(f"{path}: global_step {step!r} is not a whole number")
    if style is not None and not isinstance(style, str):
        raise FastStyleError(f"{path}: style_name {style!r} is not a name")
    try:
        net = TransformerNet(**hparams)
        net.load_state_dict(state)
    except FastStyleError as e:
        raise FastStyleError(f"{path}: {e}") from None
    except (RuntimeError, TypeError, ValueError) as e:
        raise FastStyleError(f"{path}: weights do not fit the network they describe "
                             f"({str(e).splitlines()[0]})") from None
    if len(names) != net.num_styles:
        raise FastStyleError(f"{path} names {len(names)} styles for a network of "
                             f"{net.num_styles}: the file is damaged")
    info["style_names"] = [str(n) for n in names]
    info["transformer_hparams"] = dict(hparams)
    return net.eval(), info


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; a named device must be present."""
    if name not in DEVICES:
        raise FastStyleError(f"unknown device={name}; choose one of {', '.join(DEVICES)}")
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda else "mps" if mps else "cpu"
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise FastStyleError(f"device={name} is not available on this machine; use device=cpu "
                             "or device=auto")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether the device computes bf16 in hardware (elsewhere bf16 is emulated, and slow)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # AMX or AVX512-BF16 (Xeon since Cooper Lake, recent AMD): where oneDNN's bf16
        # convolutions beat fp32 several times over. torch.cpu exposes the check privately.
        checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` is bf16 where the hardware has it (>= 40 dB PSNR against fp32, see
    benchmarks/inference.md), else fp32. fp16 is offered where it runs."""
    if precision not in PRECISIONS:
        raise FastStyleError(f"unknown precision={precision}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision != "fp32":
        try:  # one tiny convolution says whether the device has kernels for the type at all
            conv = torch.nn.Conv2d(3, 4, 3).to(device, DTYPES[precision])
            conv(torch.zeros(1, 3, 8, 8, device=device, dtype=DTYPES[precision]))
        except (RuntimeError, TypeError, NotImplementedError):
            raise FastStyleError(f"precision={precision} is not supported on {device.type}; "
                                 "use precision=fp32 or precision=auto") from None
    return precision


class Model:
    """A loaded stylisation network: ``model(batch)`` maps (1, 3, h, w) float32 CPU images in
    [0, 1] to stylised ones of the same shape."""

    info: dict
    device: torch.device
    precision: str
    # Whether the model can normalise with given statistics (needed for tiling).
    can_tile: bool = False

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def style_names(self) -> list[str]:
        return self.info.get("style_names") or [self.info.get("style_name") or "style"]

    def choose_style(self, style: str | None = None, mix: str | None = None) -> None:
        """Pick one of a multi-style network's styles (``style=``) or blend them (``mix=``)."""
        from fast_style.multistyle.weights import inference_weights

        weights, label = inference_weights(self.style_names, style, mix)
        if weights is not None:
            self.info["style_name"] = label
        self.use_style_weights(weights)

    def use_style_weights(self, weights: torch.Tensor | None) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        step = self.info.get("global_step")
        style = self.info.get("style_name") or "style"
        return f"{style}{f', step {step}' if step is not None else ''}, {self.device.type} {self.precision}"


class TorchModel(Model):
    """A TransformerNet on a device, in a precision, in channels_last (oneDNN's fast layout).

    ``compile=True`` runs whole-image passes through ``torch.compile`` (Inductor) with freezing:
    it fuses the reflection pads, norms and ReLUs around the convolutions and folds the weights
    in (~1.2x the eager pass on a CPU without bf16: benchmarks/README.md). The first image of
    each new shape waits for compilation (12-14 s on that CPU), so it pays on folders and
    video. Video's ``features`` runs the network stage by stage (``run_stage``): each stage
    compiles on its own. Tiled passes, and passes whose norms carry given statistics (video's
    shared statistics), run eagerly: those reach into the network's layers, which a frozen
    graph has folded away.
    """

    def __init__(self, net: TransformerNet, info: dict, device: torch.device, precision: str,
                 compile: bool = False):
        self.info, self.device, self.precision = info, device, precision
        self.compile = compile
        # "net" (whole passes) or a stage's name -> its compiled graph.
        self._compiled: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
        self.dtype = DTYPES[precision]
        self.net = net.eval().to(device, self.dtype, memory_format=torch.channels_last)
        self.norms = [m for m in self.net.modules() if isinstance(m, InstanceNorm2d)]
        # Normalisation keeps fp32 parameters (and the statistics tiles are given) under bf16/fp16
        # activations, as autocast does: batch norm kernels take this mix, and it is more exact.
        for m in self.net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._NormBase):
                m.float()
        # Batch norm uses its running statistics in eval mode: tiles agree without any help.
        self.can_tile = True

    def use_style_weights(self, weights: torch.Tensor | None) -> None:
        # Set on the norms once: tiled inference runs the network's stages one by one.
        self.net.set_style_weights(None if weights is None else weights.to(self.device))
        self._compiled = {}  # a frozen graph holds the old weights as constants

    def place(self, x: torch.Tensor) -> torch.Tensor:
        """A float batch as the network takes it: its device, precision and channels_last."""
        return x.to(self.device, self.dtype).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return self._forward(self.place(image)).float().clamp_(0, 1).cpu()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_stage("net", x)

    def run_stage(self, stage: str, x: torch.Tensor) -> torch.Tensor:
        """The whole network ("net") or one of its stages ("encoder", "residuals", "decoder")
        on a placed batch, compiled when ``compile`` is on and nothing reaches into its layers."""
        module = self.net if stage == "net" else getattr(self.net, stage)
        if not self.compile or any(norm._forward_pre_hooks or norm.stats is not None
                                   for norm in self.norms):
            return module(x)
        if stage not in self._compiled:
            # dynamic=None: the first shape compiles static; a second shape recompiles once with
            # symbolic sizes, which then serves photos of every size without compiling again.
            self._compiled[stage] = torch.compile(module, options={"freezing": True})
        try:
            return self._compiled[stage](x)
        except torch.OutOfMemoryError:
            raise  # the photo is too large, compiled or not: the caller's error to report
        except Exception as e:  # noqa: BLE001 - Inductor raises many kinds (no C++ compiler, ...)
            # Dynamo wraps the backend's error ("backend='inductor' raised:"): name the cause.
            cause = getattr(e, "inner_exception", None) or e
            first = (str(cause).strip().splitlines() or [""])[0][:200]
            warnings.warn(f"compile=true failed, running uncompiled instead "
                          f"({type(cause).__name__}: {first})", stacklevel=3)
            self.compile = False
            return module(x)

    def describe(self) -> str:
        return super().describe() + (", compiled" if self.compile else "")


class OnnxModel(Model):
    """An exported graph run by onnxruntime. It cannot take given normalisation statistics, so
    it stylises every image whole (tile=0)."""

    def __init__(self, path: Path, device: torch.device):
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), providers=providers)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise FastStyleError(f"{path} is not a readable ONNX model ({first})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        # A multi-style export takes the style weights as a second input (multistyle/export.py).
        names = [n for n in meta.get("style_names", "").split(",") if n]
        if (meta.get("format") != ONNX_FORMAT or len(inputs) != (2 if len(names) > 1 else 1)
                or len(outputs) != 1):
            raise FastStyleError(f"{path} is an ONNX model of something other than fast-style's "
                                 "transform network: export one with scripts/export.py")
        self.input_name = inputs[0].name
        self.weights_name = inputs[1].name if len(inputs) == 2 else None
        self.style_weights = None
        step = meta.get("global_step", "")
        # Metadata is free text in a file we may not have written: a step only if it is one.
        self.info = {"style_name": meta.get("style_name"),
                     "global_step": int(step) if step.isdigit() else None}
        if names:
            self.info["style_names"] = names
        self.device = torch.device("cuda" if providers[0].startswith("CUDA") else "cpu")
        self.precision = "fp32"

    def use_style_weights(self, weights: torch.Tensor | None) -> None:
        self.style_weights = None if weights is None else weights.float().numpy()

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        feeds = {self.input_name: image.float().contiguous().numpy()}
        if self.weights_name:
            if self.style_weights is None:
                raise FastStyleError(f"this network holds {len(self.style_names)} styles: pick "
                                     "one with style=NAME or blend with mix=NAME:WEIGHT,...")
            feeds[self.weights_name] = self.style_weights
        (out,) = self.session.run(None, feeds)
        return torch.from_numpy(out).clamp_(0, 1)


def load_model(path: str | Path, device: str = "auto", precision: str = "auto",
               style: str | None = None, mix: str | None = None, compile: bool = False) -> Model:
    """A .ckpt / .pth (PyTorch) or .onnx (onnxruntime) model, ready to stylise. A network of
    several styles needs ``style=NAME`` or ``mix=NAME:WEIGHT,...`` (Model.choose_style).
    ``compile``: torch.compile whole-image passes of a PyTorch network (TorchModel)."""
    if is_url(path):
        raise FastStyleError(f"ckpt={path} is a URL: download it and pass the local file")
    path = Path(path)
    dev = resolve_device(device)
    if path.suffix.lower() == ".onnx":
        if precision not in ("auto", "fp32"):
            raise FastStyleError(f"precision={precision} needs a PyTorch checkpoint; ONNX exports "
                                 "run in fp32")
        if compile:
            raise FastStyleError("compile=true needs a PyTorch checkpoint (.pth or .ckpt); "
                                 "onnxruntime optimises an ONNX export by itself")
        if not path.is_file():
            raise FastStyleError(f"checkpoint {path} not found")
        model: Model = OnnxModel(path, dev)
    else:
        net, info = load_transformer(path)
        model = TorchModel(net, info, dev, resolve_precision(precision, dev), compile)
    model.choose_style(style, mix)
    return model


@torch.inference_mode()
def stylize(net: TransformerNet, image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) or (B, 3, H, W) in [0, 1] -> the same shape, stylised, in [0, 1] (whole image,
    the network's own device and dtype; the simple path that training evaluation uses)."""
    batched = image.dim() == 4
    param = next(net.parameters())
    out = net(image.to(param.device, param.dtype) if batched else image.unsqueeze(0).to(param))
    out = out.float().clamp(0, 1)
    return out if batched else out[0]


# ----------------------------------------------------------------------------------------------
# Tiling
#
# A whole pass keeps several full-resolution maps of 32-64 channels alive: about 2 GB for a
# 2048x2048 photo in bf16, 8 GB for 4K. Tiles bound that, but instance norm needs every layer's
# mean and variance over the *whole* image: per-tile statistics shift the tone from tile to tile,
# and statistics from a downscaled copy are off too (a 9x9 filter sees different detail at a
# different scale; on an upscaled 4K photo the first layer's variance came out 2x too high, and
# the result 22 dB from the whole pass). So the statistics are measured exactly instead, which the
# network's shape makes cheap:
#
#   encoder    full res -> 1/4 res  tiles: 3 statistics passes (one per norm, each stopping at
#                                   its layer), then one pass writing the 1/4-res map
#   residuals  1/4 res              the whole 1/4-res map at once (1/16 of the pixels): its
#                                   norms see the whole image by themselves
#   decoder    1/4 res -> full res  tiles of the 1/4-res map: 2 statistics passes, then the
#                                   output, blended with feathered weights over the overlaps
#
# Layer k's statistics are measured with layers < k already normalised by whole-image values, so
# they are exact; every tile has overlap/2 px of real context on each side, more than the reach
# of a tiled stage (about 11 px), so a tiled result equals the untiled one up to rounding.
# Cost: about 1.6x a whole pass, in memory bounded by the tile plus the 1/4-res map.
# ----------------------------------------------------------------------------------------------

def _round4(x: float) -> int:
    return round(x / SIZE_MULTIPLE) * SIZE_MULTIPLE


@dataclass(frozen=True)
class Span:
    """One tile along one axis: the window [start, end) the network sees, and the core
    [core_start, core_end) it owns (cores partition the axis; statistics are counted there)."""

    start: int
    end: int
    core_start: int
    core_end: int


def plan_spans(length: int, window: int, overlap: int) -> list[Span]:
    """Windows of at most ``window`` px over [0, length) (multiples of 4), as few as can cover it
    with neighbours overlapping by ``overlap``, shrunk to share the length evenly (so no window
    redoes much of its neighbour's work). Core boundaries sit in the middle of each overlap:
    every core pixel has about overlap/2 px of real context on each side."""
    if length <= window:
        return [Span(0, length, 0, length)]
    n = math.ceil((length - overlap) / (window - overlap))
    window = min(window, -(-(length + (n - 1) * overlap) // (n * SIZE_MULTIPLE)) * SIZE_MULTIPLE)
    step = (length - window) / (n - 1)
    starts = [min(length - window, _round4(i * step)) for i in range(n)]
    bounds = [0] + [_round4((starts[i] + starts[i - 1] + window) / 2) for i in range(1, n)] + [length]
    return [Span(s, s + window, bounds[i], bounds[i + 1]) for i, s in enumerate(starts)]


def blend_weights(span: Span, length: int, feather: int) -> torch.Tensor:
    """1-D weights over a window: 1 on the core, linear ramps of ``feather`` px centred on the
    core boundaries inside the image. Neighbours' ramps are complementary, so the weights of all
    windows sum to exactly 1 everywhere (no normalisation buffer needed) and seams fade out."""
    pos = torch.arange(span.start, span.end, dtype=torch.float32) + 0.5
    w = torch.ones(span.end - span.start)
    if span.core_start > 0:
        w = torch.minimum(w, ((pos - span.core_start) / feather + 0.5).clamp(0, 1))
    if span.core_end < length:
        w = torch.minimum(w, ((span.core_end - pos) / feather + 0.5).clamp(0, 1))
    return w


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[tuple[Span, Span]]:
    """Tiles over the padded image (what the network computes on), row by row."""
    hp, wp = padded_length(height), padded_length(width)
    return [(ys, xs) for ys in plan_spans(hp, tile, overlap) for xs in plan_spans(wp, tile, overlap)]


def _image_tile(image: torch.Tensor, ys: Span, xs: Span) -> torch.Tensor:
    """The window of a (3, H, W) uint8 image as (1, 3, h, w) float in [0, 1]; parts beyond the
    image are padded as the network pads the whole image (a tile short of a side ends the image,
    and is short only where the image is: at most 3 px, or a whole side under MIN_SIDE)."""
    h, w = image.shape[-2:]
    crop = image[:, ys.start:min(ys.end, h), xs.start:min(xs.end, w)]
    return pad_to_multiple(TF.to_dtype(crop, torch.float32, scale=True).unsqueeze(0))


def _map_tile(features: torch.Tensor, ys: Span, xs: Span) -> torch.Tensor:
    """The window of the 1/4-resolution map (spans are in full-resolution px, multiples of 4)."""
    q = SIZE_MULTIPLE
    return features[..., ys.start // q:ys.end // q, xs.start // q:xs.end // q]


def _core(x: torch.Tensor, ys: Span, xs: Span) -> torch.Tensor:
    """The core of a tile's feature map at whatever resolution it has (full, 1/2 or 1/4)."""
    sy, sx = (ys.end - ys.start) // x.shape[-2], (xs.end - xs.start) // x.shape[-1]
    return x[..., (ys.core_start - ys.start) // sy:(ys.core_end - ys.start) // sy,
                  (xs.core_start - xs.start) // sx:(xs.core_end - xs.start) // sx]


def _channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (mean, biased var) in fp32 over a (1, C, h, w) map. Batch norm's statistics
    kernel is the fast one (see InstanceNorm2d); eps=0 so var = invstd**-2 exactly."""
    x = x.contiguous(memory_format=torch.channels_last)
    _, mean, invstd = torch.native_batch_norm(x, None, None, None, None, True, 0.0, 0.0)
    return mean.float(), invstd.float().pow(-2)


class _RunningStats:
    """Per-channel (count, mean, M2) merged over tile cores with Chan's parallel formula."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0, None, None

    def add(self, x: torch.Tensor) -> None:
        mean, var = (t.double().cpu() for t in _channel_stats(x))
        count = x.shape[-2] * x.shape[-1]
        if self.mean is None:
            self.count, self.mean, self.m2 = count, mean, var * count
            return
        n = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * count / n
        self.m2 = self.m2 + var * count + delta**2 * self.count * count / n
        self.count = n

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean.float(), (self.m2 / self.count).float()


class _Measured(Exception):
    """Raised by the measuring hook: the rest of the network is not needed for this tile."""


def _measure(norm: InstanceNorm2d, stage: Callable[[torch.Tensor], torch.Tensor],
             tiles: Callable[[Span, Span], torch.Tensor], grid: list[tuple[Span, Span]],
             device: torch.device, tick: Callable[[], None]) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole-image statistics of ``norm``'s input: every tile runs ``stage`` up to ``norm``,
    whose core is counted, and stops there."""
    acc = _RunningStats()
    current: list[tuple[Span, Span]] = []

    def hook(module, args):
        acc.add(_core(args[0], *current[-1]))
        raise _Measured

    handle = norm.register_forward_pre_hook(hook)
    try:
        for ys, xs in grid:
            current.append((ys, xs))
            try:
                stage(tiles(ys, xs))
            except _Measured:
                pass
            tick()
    finally:
        handle.remove()
    mean, var = acc.result()
    return mean.to(device), var.to(device)


@torch.inference_mode()
def stylize_tiled(model: TorchModel, image: torch.Tensor, tile: int = DEFAULT_TILE,
                  overlap: int = DEFAULT_OVERLAP,
                  progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """(3, H, W) uint8 -> (3, H, W) float32 stylised tile by tile, equal to the whole pass up to
    rounding (see the section comment above). ``tile`` and ``overlap`` are in px."""
    net, h, w = model.net, *image.shape[-2:]
    hp, wp = padded_length(h), padded_length(w)
    grid = tile_grid(h, w, tile, overlap)
    enc_norms = [m for m in net.encoder.modules() if isinstance(m, InstanceNorm2d)]
    dec_norms = [m for m in net.decoder.modules() if isinstance(m, InstanceNorm2d)]
    total = len(grid) * (len(enc_norms) + len(dec_norms) + 2)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    def image_tiles(ys: Span, xs: Span) -> torch.Tensor:
        return model.place(_image_tile(image, ys, xs))

    norms = enc_norms + dec_norms
    try:
        # Encoder: statistics layer by layer, then the 1/4-resolution map, core by core.
        for norm in enc_norms:
            norm.stats = _measure(norm, net.encoder, image_tiles, grid, model.device, tick)
        features = None
        for ys, xs in grid:
            y = net.encoder(image_tiles(ys, xs))
            if features is None:
                features = torch.empty(1, y.shape[1], hp // SIZE_MULTIPLE, wp // SIZE_MULTIPLE,
                                       dtype=y.dtype, device=y.device,
                                       memory_format=torch.channels_last)
            q = SIZE_MULTIPLE
            features[..., ys.core_start // q:ys.core_end // q,
                     xs.core_start // q:xs.core_end // q] = _core(y, ys, xs)
            tick()
        # Residual blocks on the whole 1/4-resolution map: exact whole-image statistics.
        features = net.residuals(features)

        # Decoder: statistics layer by layer, then the output, blended over the overlaps.
        def map_tiles(ys: Span, xs: Span) -> torch.Tensor:
            return _map_tile(features, ys, xs)

        for norm in dec_norms:
            norm.stats = _measure(norm, net.decoder, map_tiles, grid, model.device, tick)
        out = torch.zeros(3, h, w)
        feather = max(SIZE_MULTIPLE, overlap // 2)
        for ys, xs in grid:
            y = net.decoder(map_tiles(ys, xs))
            y = net.activate(y, image_tiles(ys, xs))[0].float().clamp_(0, 1).cpu()
            rows, cols = min(ys.end, h) - ys.start, min(xs.end, w) - xs.start
            weight = blend_weights(ys, hp, feather)[:rows, None] * blend_weights(xs, wp, feather)[None, :cols]
            out[:, ys.start:ys.start + rows, xs.start:xs.start + cols].add_(y[:, :rows, :cols] * weight)
            tick()
    finally:
        for norm in norms:
            norm.stats = None
    return out


# ----------------------------------------------------------------------------------------------
# Colour, strength and the whole pipeline
# ----------------------------------------------------------------------------------------------

def _bands(height: int, rows: int = 256) -> Iterator[slice]:
    for top in range(0, height, rows):
        yield slice(top, min(height, top + rows))


def finish(original: torch.Tensor, stylised: torch.Tensor, preserve_color: bool = False,
           strength: float = 1.0) -> torch.Tensor:
    """(3, H, W) uint8 original + (3, H, W) float stylised -> (3, H, W) uint8 result.

    preserve_color keeps the original's chroma under the stylised luminance: adding the same
    amount to R, G and B moves Y (BT.601) by exactly that amount and leaves Cb and Cr unchanged,
    so ``original + (Y_stylised - Y_original)`` is the original's colour at the new brightness
    (clipped to [0, 1] where it would leave the gamut). strength blends with the original.
    Row bands keep the temporaries small on 8K images.
    """
    result = torch.empty_like(original)
    for rows in _bands(original.shape[-2]):
        orig = TF.to_dtype(original[:, rows], torch.float32, scale=True)
        sty = stylised[:, rows]
        if preserve_color:
            sty = (orig + (TF.rgb_to_grayscale(sty) - TF.rgb_to_grayscale(orig))).clamp_(0, 1)
        if strength != 1:
            sty = torch.lerp(orig, sty, strength)
        result[:, rows] = sty.mul(255).round_().clamp_(0, 255).to(torch.uint8)
    return result


# infer.py's margin= (px): measured on held-out photos in benchmarks/borders.md.
DEFAULT_MARGIN = 32

@dataclass
class StyleOptions:
    """How ``stylize_photo`` treats one image (infer.py's settings, minus files and model)."""

    tile: int | None = None         # None: automatic; 0: never tile; > 0: window side in px
    tile_overlap: int = DEFAULT_OVERLAP
    auto_tile_pixels: int | None = None  # None: per device (auto_tile_pixels)
    preserve_color: bool = False
    strength: float = 1.0
    # px of the photo reflected around it before the network and cropped after: the network's
    # response to its own border (a dark band and thin lines up to ~28 px in) falls outside the
    # photo (benchmarks/borders.md).
    margin: int = DEFAULT_MARGIN

    def validate(self) -> None:
        if self.margin < 0 or self.margin % 4:
            raise FastStyleError(f"margin={self.margin} must be 0 or a multiple of 4 px")
        if not 0 <= self.strength <= 1:
            raise FastStyleError(f"strength={self.strength} must lie in [0, 1] (0 returns the "
                                 "photo, 1 the full style)")
        if self.tile is not None and self.tile < 0:
            raise FastStyleError(f"tile={self.tile} must be 0 (never tile), a size in px, or "
                                 "auto")
        if self.tile and self.tile < 64:
            raise FastStyleError(f"tile={self.tile} is too small: use at least 64 px (1024 is "
                                 "a good size)")
        if self.tile and not 0 <= self.tile_overlap <= self.tile // 4:
            raise FastStyleError(f"tile_overlap={self.tile_overlap} must lie in [0, tile/4 = "
                                 f"{self.tile // 4}]")

    def tile_for(self, height: int, width: int, device: torch.device | None = None) -> int:
        """The window side for this image on ``device``, or 0 for one whole pass."""
        if self.tile is None:
            limit = self.auto_tile_pixels or auto_tile_pixels(device)
            return DEFAULT_TILE if height * width > limit else 0
        if self.tile == 0 or max(padded_length(height), padded_length(width)) <= self.tile:
            return 0
        return _round4(self.tile)


def stylize_photo(model: Model, image: torch.Tensor, options: StyleOptions | None = None,
                  progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """(3, H, W) uint8 RGB -> (3, H, W) uint8 stylised, at the same size, any size.

    ``progress(done, total)`` hears about tiles on large images.
    """
    options = options or StyleOptions()
    options.validate()
    if options.strength == 0:  # the photo itself, bit for bit; no network needed
        return image.clone()
    h, w = image.shape[-2:]
    photo, image, margin = image, *with_margin(image, options.margin)
    # ONNX models (no tiling) are warned about at the CPU's threshold: ONNX Runtime's memory
    # is not torch's to read.
    tile = options.tile_for(*image.shape[-2:], model.device if model.can_tile else None)
    if tile and not model.can_tile:
        if options.tile:
            raise FastStyleError("tiling needs a PyTorch checkpoint (.pth or .ckpt): an ONNX "
                                 "graph cannot normalise tiles with whole-image statistics; "
                                 "pass tile=0 to run the image whole")
        warnings.warn(f"{w}x{h} is above the tiling threshold, but ONNX models run whole images "
                      "only: memory grows with the image (a .pth checkpoint tiles)", stacklevel=2)
        tile = 0
    if not tile:
        try:
            stylised = model(TF.to_dtype(image, torch.float32, scale=True).unsqueeze(0))[0]
        except torch.OutOfMemoryError:
            # A GPU's free memory, read once for the threshold, can shrink (other processes):
            # tiles need a fraction of it, so a photo never fails for its size.
            if not model.can_tile or options.tile == 0:
                raise
            torch.cuda.empty_cache()
            tile = DEFAULT_TILE
    if tile:
        stylised = stylize_tiled(model, image, tile, _round4(options.tile_overlap), progress)
    return finish(photo, stylised[:, margin:margin + h, margin:margin + w],
                  options.preserve_color, options.strength)


def with_margin(image: torch.Tensor, margin: int) -> tuple[torch.Tensor, int]:
    """``image`` with ``margin`` px reflected around it (less on a photo too small for that:
    reflection needs a side longer than the margin), and the margin used."""
    margin = min(margin, (min(image.shape[-2:]) - 1) // SIZE_MULTIPLE * SIZE_MULTIPLE)
    return (reflect_margin(image, margin) if margin > 0 else image), max(margin, 0)


def reflect_margin(image: torch.Tensor, margin: int) -> torch.Tensor:
    """(C, H, W) of any dtype with ``margin`` px reflected on every side (edge pixel not
    repeated, as reflection padding does); both sides must exceed ``margin``."""
    h, w = image.shape[-2:]

    def index(n: int) -> torch.Tensor:
        return torch.cat([torch.arange(margin, 0, -1), torch.arange(n),
                          torch.arange(n - 2, n - 2 - margin, -1)])

    return image[:, index(h)][:, :, index(w)]
