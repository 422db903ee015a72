"""Motion between consecutive frames: dense optical flow, warping and where the warp holds.

Flow comes from OpenCV (opencv-python-headless), classical algorithms that need no trained
weights and so work offline: DIS (Kroeger et al. 2016) for the motion-compensated blend, fast
enough to cost little next to the network; Farnebäck (2003), a different method, for the
warping error the flicker evaluation reports, so that the measure does not share the blend's
own mistakes.

Convention: ``flow`` of shape (2, H, W) maps the *current* frame to the previous one (backward
flow, in pixels, x then y): current(p) ~ previous(p + flow(p)). ``warp(previous, flow)`` then
lays the previous frame (or its stylised output) over the current one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Flow is estimated on frames scaled so that the long side is at most this many px, then scaled
# back: sensor noise averages away, and DIS's cost stays a few ms whatever the video's size.
FLOW_SIDE = 640
# Below this many px on a side there is too little to estimate motion from (DIS needs 12).
MIN_SIDE = 16


def _gray(image: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(3, H, W) float [0, 1] -> (h, w) uint8 luma at ``size`` = (h, w)."""
    luma = (image * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)
    if tuple(luma.shape[-2:]) != size:
        luma = F.interpolate(luma[None], size=size, mode="area")[0]
    return luma[0].mul(255).round_().clamp_(0, 255).to(torch.uint8).numpy()


def _flow_size(height: int, width: int) -> tuple[int, int]:
    scale = min(1.0, FLOW_SIDE / max(height, width))
    return max(MIN_SIDE, round(height * scale)), max(MIN_SIDE, round(width * scale))


def _to_full(flow: np.ndarray, height: int, width: int) -> torch.Tensor:
    """(h, w, 2) flow at the estimation size -> (2, H, W) in full-size pixels."""
    small = torch.from_numpy(flow).permute(2, 0, 1)
    h, w = small.shape[-2:]
    if (h, w) == (height, width):
        return small.contiguous()
    full = F.interpolate(small[None], size=(height, width), mode="bilinear", align_corners=False)[0]
    full[0] *= width / w
    full[1] *= height / h
    return full


class FlowEstimator:
    """``estimator(current, previous)`` -> backward flow (2, H, W) between two (3, H, W) float
    frames in [0, 1]. ``method``: "dis" (fast, the blend's) or "farneback" (the measure's)."""

    def __init__(self, method: str = "dis"):
        import cv2  # here, not at the top: the other stabilisation modes run without OpenCV

        self.cv2, self.method = cv2, method
        self.dis = (cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
                    if method == "dis" else None)

    def __call__(self, current: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        return self.between(self.luma(current), self.luma(previous), *current.shape[-2:])

    def luma(self, frame: torch.Tensor) -> np.ndarray | None:
        """What the flow is estimated on: a (3, H, W) float frame as small uint8 luma (None for
        frames too small to estimate motion on). A video's frames each need it twice, as the
        current frame and then as the previous one: the Stabilizer keeps it in between."""
        height, width = frame.shape[-2:]
        if min(height, width) < MIN_SIDE:  # DIS refuses such frames: take them as still
            return None
        return _gray(frame, _flow_size(height, width))

    def between(self, current: np.ndarray | None, previous: np.ndarray | None, height: int,
                width: int) -> torch.Tensor:
        """The backward flow (2, height, width) between two frames' ``luma``."""
        if current is None or previous is None:
            return torch.zeros(2, height, width)
        if self.dis is not None:
            flow = self.dis.calc(current, previous, None)
        else:
            flow = self.cv2.calcOpticalFlowFarneback(current, previous, None, pyr_scale=0.5,
                                                     levels=4, winsize=15, iterations=3,
                                                     poly_n=5, poly_sigma=1.2, flags=0)
        return _to_full(flow, height, width)


def warp(image: torch.Tensor, flow: torch.Tensor,
         with_inside: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(C, H, W) ``image`` of the previous frame laid over the current one along ``flow``
    (bilinear), and a (1, H, W) mask: 1 where the source point lies on the frame (None when
    ``with_inside`` is false: callers that discard it skip a full-frame pass)."""
    _, height, width = image.shape
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=flow.device),
                            torch.arange(width, dtype=torch.float32, device=flow.device),
                            indexing="ij")
    x, y = xs + flow[0], ys + flow[1]
    # Half a pixel beyond the outer pixel centres still lies on the edge pixel.
    inside = (((x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)).float()[None]
              if with_inside else None)
    grid = torch.stack([x / max(width - 1, 1) * 2 - 1, y / max(height - 1, 1) * 2 - 1], dim=-1)
    warped = F.grid_sample(image[None].float(), grid[None], mode="bilinear",
                           padding_mode="border", align_corners=True)[0]
    return warped, inside


def consistent(forward: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
    """(1, H, W) mask of the current frame's pixels visible in both frames: the backward flow,
    followed forward again from where it lands, comes back to where it started (the test of
    Sundaram et al. 2010 that Ruder et al.'s video style transfer uses:
    |f(p + b(p)) + b(p)|^2 <= 0.01 (|f|^2 + |b|^2) + 0.5). ``forward``: previous -> current,
    ``backward``: current -> previous."""
    returned, _ = warp(forward, backward, with_inside=False)
    error = (returned + backward).pow(2).sum(0, keepdim=True)
    motion = returned.pow(2).sum(0, keepdim=True) + backward.pow(2).sum(0, keepdim=True)
    return (error <= 0.01 * motion + 0.5).float()
