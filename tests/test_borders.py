"""The border-artifact measure finds a dark edge strip and a thin inset line where they are."""

from __future__ import annotations

import torch

from fast_style.borders import border_report


def photos_with(edit) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    images = []
    for i in range(6):
        image = 0.3 + 0.4 * torch.rand(3, 120 + 8 * i, 160, generator=gen)  # varied sizes
        edit(image)
        images.append(image)
    return images


def test_clean_images_show_no_artifact():
    report = border_report(photos_with(lambda im: None))
    for side in report.values():
        assert abs(side["edge_strip"]) < 0.01 and side["inset_line"] < 0.01


def test_dark_right_strip_and_inset_rectangle_are_found_at_their_place():
    def edit(image):
        image[:, :, -3:] -= 0.2  # dark strip along the right edge
        h, w = image.shape[-2:]  # a thin rectangle 20 px inside the border
        image[:, 20, 20:w - 20] += 0.1
        image[:, h - 21, 20:w - 20] += 0.1
        image[:, 20:h - 20, 20] += 0.1
        image[:, 20:h - 20, w - 21] += 0.1

    report = border_report(photos_with(edit))
    assert report["right"]["edge_strip"] < -0.1
    assert abs(report["left"]["edge_strip"]) < 0.01
    for side in report.values():
        assert side["inset_line_px"] == 20 and side["inset_line"] > 0.05


def test_padding_to_a_multiple_of_4_reflects_instead_of_repeating():
    # Repeating the last row/column made a flat band that trained networks render as a bright
    # strip along the right and bottom edges (benchmarks/borders.md).
    from fast_style.transformer_net import pad_to_multiple

    x = torch.rand(1, 3, 18, 21)
    padded = pad_to_multiple(x)
    assert padded.shape[-2:] == (20, 24)
    assert torch.equal(padded[..., :18, :21], x)
    assert torch.equal(padded[..., 18, :21], x[..., 16, :])  # reflected about the last row
    assert torch.equal(padded[..., :18, 21:24], x[..., :, [19, 18, 17]])
    small = pad_to_multiple(torch.rand(1, 3, 5, 130))  # too small to reflect: repeated to 16
    assert small.shape[-2:] == (16, 132)
