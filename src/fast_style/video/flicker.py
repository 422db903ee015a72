"""How much a stylised clip flickers: output change beyond the input's own change.

flicker = mean over frames t >= 1 of mean over pixels and channels of
          |(O_t - O_{t-1}) - (I_t - I_{t-1})|,  on [0, 1] pixels,

the frame-difference measure of Xu et al. (2021): a still input whose output shimmers scores the
shimmer; a moving input scores only how far the output's motion departs from the input's. It
needs no optical flow. (A flow-warped error would need a flow network's weights: torchvision's
RAFT downloads them, which cannot be done offline.)
"""

from __future__ import annotations

import torch
from torchvision.transforms.v2 import functional as TF


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


def _unit(frame: torch.Tensor) -> torch.Tensor:
    return TF.to_dtype(frame, torch.float32, scale=True) if frame.dtype == torch.uint8 else frame.float()


def flicker(inputs: list[torch.Tensor], outputs: list[torch.Tensor]) -> float:
    """The flicker of a whole clip held in memory (tests, small clips)."""
    meter = FlickerMeter()
    for image, output in zip(inputs, outputs, strict=True):
        meter.add(image, output)
    return meter.value
