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


class DarkensItsOwnBorder:
    """A stand-in network with the trained networks' fault, exaggerated: it darkens a band
    12 px wide along the border of whatever it is given."""

    can_tile = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        for band in (out[..., :12, :], out[..., -12:, :], out[..., :, :12], out[..., :, -12:]):
            band.mul_(0.5)
        return out


def test_the_margin_moves_the_networks_border_response_off_the_photo():
    from fast_style.stylize import DEFAULT_MARGIN, StyleOptions, stylize_photo

    photos = [(image * 255).round().to(torch.uint8) for image in photos_with(lambda im: None)]

    def worst_edge(margin):
        outputs = [stylize_photo(DarkensItsOwnBorder(), p, StyleOptions(margin=margin)).float()
                   / 255 for p in photos]
        assert all(o.shape == p.shape for o, p in zip(outputs, photos))
        return max(abs(side["edge_strip"]) for side in border_report(outputs).values())

    assert worst_edge(0) > 0.1  # the band shows on the photo
    assert DEFAULT_MARGIN >= 16 and worst_edge(DEFAULT_MARGIN) < 0.01  # reflected away: gone
    # A photo smaller than the margin gets what fits (reflection needs a longer side).
    small = photos[0][:, :9, :30]
    assert stylize_photo(DarkensItsOwnBorder(), small, StyleOptions()).shape == small.shape
