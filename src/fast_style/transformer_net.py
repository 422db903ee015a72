"""The image transform network of Johnson et al. (2016): a plain nn.Module, no Lightning.

Layout (defaults): 9x9 conv 32 -> 3x3/2 conv 64 -> 3x3/2 conv 128 -> 5 residual blocks of 128
-> two x2 upsamplings (64, 32) -> 9x9 conv 3. Images go in and come out as [0, 1] RGB.

With ``num_styles`` > 1 the network learns several styles at once (Dumoulin, Shlens & Kudlur,
2017): the convolutions are shared and every instance norm has one scale and shift per style
(ConditionalInstanceNorm2d). One style is exactly the single-style network (same parameters).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fast_style.errors import FastStyleError

NORMS = ("instance", "batch")
UPSAMPLES = ("nearest", "transposed")
OUTPUT_ACTIVATIONS = ("sigmoid", "tanh", "none", "residual")
# "residual": the photo plus what the network adds, in logit space. Photo pixels are clamped to
# [eps, 1 - eps] first: logit(0) is -inf. 1/512 keeps 8-bit photos exact when saved.
RESIDUAL_EPS = 1 / 512

# Two stride-2 convolutions: sizes must be a multiple of 4 to come back exactly.
SIZE_MULTIPLE = 4
# Below this the 9x9 convolution's reflection padding (4 px) cannot be applied; smaller inputs are
# padded up so that every size, even 1x1, stylises.
MIN_SIDE = 16
# Documented ranges of the network's size settings. Checked before anything is allocated: the
# settings also come from checkpoints, which are untrusted (a 1 KB file asking for width 10^6
# would otherwise take gigabytes before failing).
MAX_WIDTH = 256
MAX_RESIDUAL_BLOCKS = 32
MAX_STYLES = 1024


def check_network_settings(width, num_residual_blocks, norm, upsample, output_activation,
                           num_styles=1) -> None:
    """One-line FastStyleError unless every setting is of the right type and within range."""
    for name, value, low, top in (("width", width, 1, MAX_WIDTH),
                                  ("num_residual_blocks", num_residual_blocks, 0,
                                   MAX_RESIDUAL_BLOCKS),
                                  ("num_styles", num_styles, 1, MAX_STYLES)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= top:
            raise FastStyleError(f"model.{name}={value!r} must be a whole number from {low} to {top}")
    for name, value, allowed in (("norm", norm, NORMS), ("upsample", upsample, UPSAMPLES),
                                 ("output_activation", output_activation, OUTPUT_ACTIVATIONS)):
        if value not in allowed:
            raise FastStyleError(f"model.{name}={value!r} is not one of {', '.join(allowed)}")


def per_image_route(x: torch.Tensor, forced: bool | None) -> bool:
    """Whether instance norm runs as batch norm one image at a time (InstanceNorm2d's notes)."""
    if torch.compiler.is_compiling():
        # Inductor writes its own kernels (no channels_last copies to avoid), and the batch
        # norm route gave NaN gradients there in bf16 (torch 2.14, CPU; eager is fine).
        return False
    if forced is not None:
        return forced
    return x.device.type == "cpu" or x.shape[0] == 1


class InstanceNorm2d(nn.InstanceNorm2d):
    """nn.InstanceNorm2d (same parameters, same state_dict keys) that inference can steer.

    Two things differ from the parent, for speed and for inference on large photos:

    - on the CPU, and for a single image anywhere, every image goes through batch norm in
      training mode, one image at a time (over one image, batch statistics are that image's
      statistics: the result is instance norm's). On the CPU aten's instance_norm copies a
      channels_last input to contiguous and hands back a contiguous output, which the next
      convolution reorders again; batch norm works on channels_last in place. Measured in
      bf16/channels_last: 2-2.7x faster per layer in training batches, and several times faster
      for single-image inference (benchmarks/). On a GPU, a batch of B images would be B
      launches and a copy: aten's instance_norm is one kernel there, and a training step at
      batch 16 was 1.4x faster with it on an H200 (benchmarks/gpu.md); a single image is a
      single batch-norm launch either way, as fast or faster in bf16.
    - ``stats`` (eval mode only): a (mean, var) pair of per-channel tensors to normalise with
      instead of the input's own statistics. Tiled inference sets them to the *whole image's*
      statistics: each tile's own mean and variance differ from tile to tile and would show up
      as tone shifts. With given statistics, instance norm is an eval-mode batch norm whose
      running statistics are those values, so that is what runs.

    Observers that need the input's statistics (tiling) use a forward pre-hook.
    """

    def __init__(self, num_features: int):
        # affine=True as in pytorch/examples; running stats off: every image uses its own statistics.
        super().__init__(num_features, affine=True)
        self.stats: tuple[torch.Tensor, torch.Tensor] | None = None
        # None: the per-device choice above; True/False force a route, to compare them
        # (set_kernel_routes).
        self.per_image_batch_norm: bool | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stats is not None and not self.training:
            mean, var = self.stats
            return F.batch_norm(x, mean, var, self.weight, self.bias, False, 0.0, self.eps)
        if not per_image_route(x, self.per_image_batch_norm):
            return F.instance_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        if x.shape[0] == 1:
            return self._normalise_one(x)
        return torch.cat([self._normalise_one(image) for image in x.split(1)])

    def _normalise_one(self, image: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(image, None, None, self.weight, self.bias, True, 0.0, self.eps)


class ConditionalInstanceNorm2d(InstanceNorm2d):
    """Instance norm with one scale and shift per style: ``style_scale`` and ``style_shift``,
    (num_styles, C), instead of the shared ``weight`` and ``bias`` (Dumoulin et al., 2017).

    ``style_weights`` (set by TransformerNet for each forward) is a (B, num_styles) matrix, or
    (1, num_styles) for the whole batch: row b mixes the styles for image b. One-hot rows pick a
    style (training); other rows blend styles by mixing their scales and shifts. Each image is
    normalised as in InstanceNorm2d (the same per-device route: batch norm over one image at a
    time, or aten's instance_norm for a GPU's batches; or the given ``stats``), then takes its
    own mixed scale and shift.
    """

    def __init__(self, num_features: int, num_styles: int):
        nn.InstanceNorm2d.__init__(self, num_features, affine=False)
        self.stats = None
        self.per_image_batch_norm: bool | None = None
        # Magenta's initialisation: every style starts as the identity transform.
        self.style_scale = nn.Parameter(torch.ones(num_styles, num_features))
        self.style_shift = nn.Parameter(torch.zeros(num_styles, num_features))
        self.style_weights: torch.Tensor | None = None

    def scale_and_shift(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, C) scales and shifts: ``style_weights`` times the per-style parameters."""
        weights = self.style_weights
        if weights is None:
            raise RuntimeError("a multi-style network needs style weights: call "
                               "net(x, style_weights) or net.set_style_weights(w) first")
        # fp32 even under autocast: a one-hot row must reproduce its style's values exactly.
        with torch.autocast(weights.device.type, enabled=False):
            weights = weights.to(self.style_scale.dtype)
            scale, shift = weights @ self.style_scale, weights @ self.style_shift
        if scale.shape[0] != batch:
            scale, shift = scale.expand(batch, -1), shift.expand(batch, -1)
        return scale, shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale_and_shift(x.shape[0])
        if not per_image_route(x, self.per_image_batch_norm) and (self.stats is None
                                                                   or self.training):
            y = F.instance_norm(x, None, None, None, None, True, 0.0, self.eps)
            return y * scale[:, :, None, None].to(y.dtype) + shift[:, :, None, None].to(y.dtype)
        if self.stats is not None and not self.training:
            mean, var = self.stats
            return torch.cat([F.batch_norm(image, mean, var, s, b, False, 0.0, self.eps)
                              for image, s, b in zip(x.split(1), scale, shift)])
        return torch.cat([F.batch_norm(image, None, None, s, b, True, 0.0, self.eps)
                          for image, s, b in zip(x.split(1), scale, shift)])


class ReflectionPad2d(nn.ReflectionPad2d):
    """Reflection padding that keeps its input's dtype under autocast.

    CPU autocast lists reflection_pad2d among its fp32 ops, so under bf16 every pad would cast
    its input up and the following convolution cast it back down: copies of the largest
    activations, ~15% of a CPU training step (benchmarks/README.md). Padding only moves values,
    so it is exact in any dtype.
    """

    keep_dtype = True  # False: autocast's own choice (fp32 on CPU), for comparing (set_kernel_routes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.keep_dtype:
            return super().forward(x)
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x)


def set_kernel_routes(net: nn.Module, per_image_batch_norm: bool | None = None,
                      pads_keep_dtype: bool = True) -> nn.Module:
    """Force the two speed choices above off (False) or on (True) in ``net``; the defaults
    (None: per device, True) restore them. They compute the same function either way;
    benchmarks compare their speed per device."""
    for module in net.modules():
        if isinstance(module, InstanceNorm2d):
            module.per_image_batch_norm = per_image_batch_norm
        elif isinstance(module, ReflectionPad2d):
            module.keep_dtype = pads_keep_dtype
    return net


def _norm(kind: str, channels: int, num_styles: int = 1) -> nn.Module:
    if kind == "instance":
        return InstanceNorm2d(channels) if num_styles == 1 else ConditionalInstanceNorm2d(
            channels, num_styles)
    if num_styles != 1:
        raise ValueError("several styles need norm=instance (their scales and shifts live there)")
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


class ConvNormReLU(nn.Sequential):
    """Reflection-padded convolution, normalisation, optional ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1,
                 norm: str = "instance", relu: bool = True, num_styles: int = 1):
        layers: list[nn.Module] = [
            ReflectionPad2d(kernel // 2),
            nn.Conv2d(c_in, c_out, kernel, stride),
            _norm(norm, c_out, num_styles),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut (Gross & Wilber's variant, no final ReLU)."""

    def __init__(self, channels: int, norm: str = "instance", num_styles: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            ConvNormReLU(channels, channels, 3, norm=norm, num_styles=num_styles),
            ConvNormReLU(channels, channels, 3, norm=norm, relu=False, num_styles=num_styles),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Upsample(nn.Sequential):
    """x2 upsampling. Nearest + conv avoids the checkerboard artefacts of transposed convolution
    (Odena et al., 2016); the transposed variant is kept for reproducing the paper exactly."""

    def __init__(self, c_in: int, c_out: int, mode: str = "nearest", norm: str = "instance",
                 num_styles: int = 1):
        if mode == "nearest":
            layers: list[nn.Module] = [
                nn.Upsample(scale_factor=2, mode="nearest"),
                ReflectionPad2d(1),
                nn.Conv2d(c_in, c_out, 3),
            ]
        elif mode == "transposed":
            layers = [nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)]
        else:
            raise ValueError(f"unknown upsample {mode!r}; choose one of {', '.join(UPSAMPLES)}")
        super().__init__(*layers, _norm(norm, c_out, num_styles), nn.ReLU(inplace=True))


class TransformerNet(nn.Module):
    """Feed-forward style transform network. Any input size; the output has the input's size.

    With ``num_styles`` > 1, every forward needs style weights: ``net(x, style_weights)`` with a
    (B, num_styles) or (1, num_styles) matrix (rows of one-hot picks, or blends summing to 1), or
    ``net.set_style_weights(w)`` once for the calls that follow (tiled inference runs the stages
    one by one).
    """

    def __init__(self, width: int = 32, num_residual_blocks: int = 5, norm: str = "instance",
                 upsample: str = "nearest", output_activation: str = "sigmoid",
                 num_styles: int = 1):
        check_network_settings(width, num_residual_blocks, norm, upsample, output_activation,
                               num_styles)
        super().__init__()
        self.output_activation = output_activation
        self.num_styles = num_styles
        w1, w2, w4 = width, width * 2, width * 4
        n = num_styles
        self.encoder = nn.Sequential(
            ConvNormReLU(3, w1, 9, norm=norm, num_styles=n),
            ConvNormReLU(w1, w2, 3, stride=2, norm=norm, num_styles=n),
            ConvNormReLU(w2, w4, 3, stride=2, norm=norm, num_styles=n),
        )
        self.residuals = nn.Sequential(*[ResidualBlock(w4, norm, n)
                                         for _ in range(num_residual_blocks)])
        self.decoder = nn.Sequential(
            Upsample(w4, w2, upsample, norm, n),
            Upsample(w2, w1, upsample, norm, n),
            ReflectionPad2d(4),
            nn.Conv2d(w1, 3, 9),
        )
        if output_activation == "residual":
            # The untrained network returns the photo: training starts from a legible picture
            # and only has to learn what the style adds (benchmarks/time_to_quality.md).
            nn.init.zeros_(self.decoder[-1].weight)
            nn.init.zeros_(self.decoder[-1].bias)

    def set_style_weights(self, style_weights: torch.Tensor | None) -> None:
        """Condition every following forward on ``style_weights`` (B or 1, num_styles)."""
        if style_weights is not None and style_weights.shape[-1] != self.num_styles:
            raise ValueError(f"style weights for {style_weights.shape[-1]} styles given to a "
                             f"network of {self.num_styles}")
        for m in self.modules():
            if isinstance(m, ConditionalInstanceNorm2d):
                m.style_weights = style_weights

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        if style_weights is not None:
            self.set_style_weights(style_weights)
        try:
            h, w = x.shape[-2:]
            y = self.decoder(self.residuals(self.encoder(pad_to_multiple(x))))
            return self.activate(y[..., :h, :w], x)
        finally:
            if style_weights is not None:
                self.set_style_weights(None)

    # Tiled inference (stylize.py) runs encoder, residuals and decoder separately and then this.
    def activate(self, y: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
        return activate(y, self.output_activation, photo)


def activate(y: torch.Tensor, kind: str, photo: torch.Tensor) -> torch.Tensor:
    """The output activation: the last convolution's output ``y`` to [0, 1] pixels (``photo``,
    the input of the same size, for "residual"). A plain function: exported graphs and
    TorchScript call it too."""
    if kind == "sigmoid":
        return torch.sigmoid(y)
    if kind == "tanh":
        return (torch.tanh(y) + 1) / 2
    if kind == "residual":
        # fp32 whatever the network's precision: the photo comes back exactly where y is 0.
        out = torch.sigmoid(torch.logit(photo.float(), 1 / 512) + y.float())  # RESIDUAL_EPS
        return out.to(y.dtype)
    return y


def padded_length(n: int) -> int:
    """The side the network computes on: a multiple of SIZE_MULTIPLE, at least MIN_SIDE."""
    return max(MIN_SIDE, -(-n // SIZE_MULTIPLE) * SIZE_MULTIPLE)


def pad_to_multiple(x: torch.Tensor) -> torch.Tensor:
    """Pads the bottom/right up to padded_length: sides under MIN_SIDE by repeating the last
    row/column (reflection needs the pad to be smaller than the side), then the last 0-3 px to a
    multiple of SIZE_MULTIPLE by reflection. Repeating there made a flat band that trained
    networks render as a bright strip along the right/bottom edge (benchmarks/borders.md)."""
    h, w = x.shape[-2:]
    small_h, small_w = max(MIN_SIDE - h, 0), max(MIN_SIDE - w, 0)
    if small_h or small_w:
        x = F.pad(x, (0, small_w, 0, small_h), mode="replicate")
    return reflect_to_multiple(x)


def pad_for_export(x: torch.Tensor, small_h: int, small_w: int, multiple: int) -> torch.Tensor:
    """pad_to_multiple without a Python branch, for exported graphs: repeat ``small_h`` /
    ``small_w`` px (the shortfall to MIN_SIDE, 0 if none), then reflect to a multiple of
    ``multiple`` (SIZE_MULTIPLE; passed in, TorchScript reads no globals). Each pad may be 0, so
    exporters keep height and width symbolic instead of specialising on a size."""
    x = F.pad(x, (0, small_w, 0, small_h), mode="replicate")
    return F.pad(x, (0, (-x.shape[-1]) % multiple, 0, (-x.shape[-2]) % multiple), mode="reflect")


def reflect_to_multiple(x: torch.Tensor) -> torch.Tensor:
    """Reflection-pads the bottom/right of a (.., H, W) tensor with sides >= 4 to multiples of
    SIZE_MULTIPLE."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % SIZE_MULTIPLE, (-w) % SIZE_MULTIPLE
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    return x
