"""How much a stylised clip flickers: output change beyond the input's own change.

flicker = mean over frames t >= 1 of mean over pixels and channels of
          |(O_t - O_{t-1}) - (I_t - I_{t-1})|,  on [0, 1] pixels,

the frame-difference measure of Xu et al. (2021): a still input whose output shimmers scores the
shimmer; a moving input scores only how far the output's motion departs from the input's. It
needs no optical flow, and it is not zero for a perfectly steady video of a moving scene: a
stylised texture that moves faithfully with the scene changes more than the photo does.

warping error = mean over t >= 1 of mean |O_t - warp(O_{t-1})| over the pixels visible in both
frames, the measure of Lai et al. (2018): the previous output is carried onto the current frame
along the optical flow of the *input* frames (OpenCV's Farnebäck, motion.py; a different method
from the DIS flow the blend uses, so the measure does not share its errors), and occluded or
revealed pixels (forward-backward check) are left out. Zero for a video whose paint moves with
the scene; it counts the flicker of moving content that the frame difference confounds with motion.
"""

from __future__ import annotations

import torch
from torchvision.transforms.v2 import functional as TF

from fast_style.video.motion import FlowEstimator, consistent, warp


class FlickerMeter:
    """Fed (input, output) frame pairs in order, ``value`` is the flicker so far."""

    def __init__(self):
        self.previous: tuple[torch.Tensor, torch.Tensor] | None = None
        self.total, self.count = 0.0, 0

    def add(self, image: torch.Tensor, output: torch.Tensor) -> None:
        """(3, H, W) uint8 (or float in [0, 1]) input frame and its stylised output."""
        current = (_unit(image), _unit(output))
        if self.previous is not None:
            (i0, o0), (i1, o1) = self.previous, current
            self.total += float(((o1 - o0) - (i1 - i0)).abs().mean())
            self.count += 1
        self.previous = current

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else 0.0


class WarpingErrorMeter:
    """Fed (input, output) frame pairs in order, ``value`` is the warping error so far."""

    def __init__(self):
        self.flow = FlowEstimator("farneback")
        self.previous: tuple[torch.Tensor, torch.Tensor] | None = None
        self.total, self.count = 0.0, 0

    def add(self, image: torch.Tensor, output: torch.Tensor) -> None:
        current = (_unit(image), _unit(output))
        if self.previous is not None and self.previous[0].shape == current[0].shape:
            (i0, o0), (i1, o1) = self.previous, current
            backward, forward = self.flow(i1, i0), self.flow(i0, i1)
            carried, inside = warp(o0, backward)
            visible = inside * consistent(forward, backward)
            # Under a quarter of the frame seen in both: a cut, whose change is not flicker.
            if visible.mean() >= 0.25:
                error = (o1 - carried).abs().mean(0, keepdim=True)
                self.total += float((error * visible).sum() / visible.sum())
                self.count += 1
        self.previous = current

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else 0.0


def _unit(frame: torch.Tensor) -> torch.Tensor:
    return TF.to_dtype(frame, torch.float32, scale=True) if frame.dtype == torch.uint8 else frame.float()


def flicker(inputs: list[torch.Tensor], outputs: list[torch.Tensor]) -> float:
    """The flicker of a whole clip held in memory (tests, small clips)."""
    meter = FlickerMeter()
    for image, output in zip(inputs, outputs, strict=True):
        meter.add(image, output)
    return meter.value
