"""Export a network of several styles with the style weights as a graph input.

``net(image, style_weights)``: style_weights is (1, N) float32, one row summing to 1 (one-hot
for one style, anything else blends), so one exported file blends at run time. The conditional
norms cannot take the weights through nn.Sequential, so the exported copy is rebuilt from
modules whose forward takes ``(x, style_weights)``: stock layers are wrapped, the norms become
instance norm without affine plus ``weights @ scale`` / ``weights @ shift``, which ONNX and
TorchScript both express with standard operations.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.transformer_net import (
    MIN_SIDE,
    SIZE_MULTIPLE,
    ConditionalInstanceNorm2d,
    ResidualBlock,
    TransformerNet,
    activate,
    pad_for_export,
)


class _Plain(nn.Module):
    """A layer that ignores the style weights."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class _StyledNorm(nn.Module):
    def __init__(self, norm: ConditionalInstanceNorm2d):
        super().__init__()
        self.scale = nn.Parameter(norm.style_scale.detach().float().clone())
        self.shift = nn.Parameter(norm.style_shift.detach().float().clone())
        self.eps = norm.eps

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        y = F.instance_norm(x, eps=self.eps)
        scale = (style_weights @ self.scale).unsqueeze(-1).unsqueeze(-1)
        shift = (style_weights @ self.shift).unsqueeze(-1).unsqueeze(-1)
        return y * scale + shift


class _StyledSequential(nn.Module):
    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, style_weights)
        return x


class _StyledResidual(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        return x + self.body(x, style_weights)


def styled(module: nn.Module) -> nn.Module:
    """``module`` rebuilt from layers taking ``(x, style_weights)`` (same weights, fp32)."""
    if isinstance(module, ConditionalInstanceNorm2d):
        return _StyledNorm(module)
    if isinstance(module, ResidualBlock):
        return _StyledResidual(styled(module.body))
    if isinstance(module, nn.Sequential):
        return _StyledSequential([styled(child) for child in module])
    if isinstance(module, nn.ReflectionPad2d):  # ours keeps dtypes under autocast: not needed
        return _Plain(nn.ReflectionPad2d(module.padding))
    return _Plain(module)


class _StyledExportable(nn.Module):
    def __init__(self, net: TransformerNet):
        super().__init__()
        net = copy.deepcopy(net).float().eval()
        self.encoder, self.residuals = styled(net.encoder), styled(net.residuals)
        self.decoder = styled(net.decoder)
        self.output_activation = net.output_activation
        self.min_side, self.multiple = MIN_SIDE, SIZE_MULTIPLE

    def run(self, x: torch.Tensor, style_weights: torch.Tensor, h: int, w: int, pad_h: int,
            pad_w: int) -> torch.Tensor:
        padded = pad_for_export(x, pad_h, pad_w, self.multiple)  # as pad_to_multiple
        y = self.encoder(padded, style_weights)
        y = self.decoder(self.residuals(y, style_weights), style_weights)[..., :h, :w]
        return activate(y, self.output_activation, x)


class OnnxStyledNet(_StyledExportable):
    def forward(self, image: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2], image.shape[-1]
        # sym_max keeps max() symbolic under torch.export (Python's max would specialise it).
        pad_h = torch.sym_max(self.min_side - h, 0)
        pad_w = torch.sym_max(self.min_side - w, 0)
        return self.run(image, style_weights, h, w, pad_h, pad_w)


class ScriptStyledNet(_StyledExportable):
    def forward(self, image: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2], image.shape[-1]
        pad_h = max(self.min_side - h, 0)
        pad_w = max(self.min_side - w, 0)
        return self.run(image, style_weights, h, w, pad_h, pad_w)


def check_weights(num_styles: int, seed: int = 0) -> torch.Tensor:
    """A blend of every style (1, N), seeded: the parity check exercises the mixing too."""
    weights = torch.rand(1, num_styles, generator=torch.Generator().manual_seed(seed)) + 0.1
    return weights / weights.sum()
