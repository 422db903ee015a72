"""Border artifacts of a stylisation network, measured.

Users of every fast-style codebase report two: a strip along the image's edge (dark along the
right/bottom, sometimes bright) and a thin rectangle traced ~20 px inside the border. Both show
as a deviation of the mean luminance at a fixed distance from a side, averaged over many photos
(the photos' own content averages out; an artifact, being at the same place in every output,
does not):

- ``edge_strip``: mean luminance of the outermost 4 px minus that of the band 8-16 px in;
- ``edge_band``: the same for a wide band, the outer 24 px against 32-44 px in (trained networks
  darken a band up to ~28 px wide, which edge_strip, measuring inside it, underrates);
- ``inset_line``: the largest |profile(d) - mean(profile(d-3), profile(d+3))| for d in 8..40,
  i.e. a thin line parallel to the side, and the distance ``inset_line_px`` where it lies.

The same figures of the input photos are the noise level to compare against.
"""

from __future__ import annotations

import torch

SIDES = ("top", "bottom", "left", "right")
DEPTH = 48  # px from each side that the profile covers


def luminance(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, H, W) Rec. 601 luma."""
    r, g, b = images.float().unbind(1)
    return 0.299 * r + 0.587 * g + 0.114 * b


def side_profiles(images: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """side -> (DEPTH,) mean luminance at distance d from that side, over every image ((3, H, W)
    each, sizes may differ) and along the whole side."""
    sums = {side: torch.zeros(DEPTH) for side in SIDES}
    for image in images:
        lum = luminance(image[None])[0]
        rows, cols = lum.mean(1), lum.mean(0)  # per-row and per-column means
        sums["top"] += rows[:DEPTH]
        sums["bottom"] += rows.flip(0)[:DEPTH]
        sums["left"] += cols[:DEPTH]
        sums["right"] += cols.flip(0)[:DEPTH]
    return {side: total / len(images) for side, total in sums.items()}


def border_report(images: list[torch.Tensor]) -> dict[str, dict[str, float]]:
    """Per side: edge_strip (signed, negative = darker edge), inset_line (size) and inset_line_px."""
    report = {}
    for side, p in side_profiles(images).items():
        line = p[5:43] - (p[2:40] + p[8:46]) / 2  # d = 5..42: a thin line against its neighbours
        window = line[3:36]  # d = 8..40
        at = int(window.abs().argmax())
        report[side] = {"edge_strip": round(float(p[:4].mean() - p[8:16].mean()), 4),
                        # a wide band (trained networks darken up to ~28 px) against the interior
                        "edge_band": round(float(p[:24].mean() - p[32:44].mean()), 4),
                        "inset_line": round(float(window[at].abs()), 4),
                        "inset_line_px": at + 8}
    return report
