"""Perceptual losses of Johnson et al. (2016) as pure functions.

Definitions (matching jcjohnson/fast-neural-style):
- content: mean squared error between VGG activations at one layer (relu2_2);
- style: per layer, mean squared error between Gram matrices normalised by C*H*W, weighted, summed;
- total variation: 0.5 * sum of squared differences between neighbouring pixels, in 0-255 units,
  averaged over the batch (the Lua TotalVariation module's gradient, written as a loss).
Grams and loss reductions run in fp32 even under bf16/fp16 autocast: they are sums over
tens of thousands of terms, where 8 mantissa bits lose the signal.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

# On a GPU, a Gram's sum over positions runs in chunks of about this many positions, in
# parallel, and the chunks' Grams are added. One (C x C) product per image over all H*W positions
# gives the GPU only a few output tiles to spread over its ~100 multiprocessors: at relu1_2
# (C = 64, 65,536 positions at 256 px) cuBLAS ran 16 blocks for a batch of 4, at relu2_2 64;
# 2.7 ms of an H200's 12.9 ms of kernels a training step (benchmarks/gpu.md). A CPU has a few
# cores, which one long product keeps busy: there the sum stays whole.
GRAM_CHUNK_POSITIONS = 4096


def gram_matrix(features: torch.Tensor, chunk_positions: int | None = None) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) Gram matrices divided by C*H*W, computed in fp32.

    ``chunk_positions``: split the sum over positions into chunks of about this many (0: never);
    None: GRAM_CHUNK_POSITIONS on a GPU, 0 on a CPU. Chunks are used only for channels_last
    features (where they are a view, no copy) and when they divide the positions evenly; the
    result is the same up to fp32 rounding order."""
    b, c, h, w = features.shape
    if chunk_positions is None:
        chunk_positions = 0 if features.device.type == "cpu" else GRAM_CHUNK_POSITIONS
    with torch.autocast(features.device.type, enabled=False):
        flat = features.float().reshape(b, c, h * w)
        chunks = h * w // chunk_positions if chunk_positions else 0
        if (chunks >= 2 and (h * w) % chunks == 0
                and features.is_contiguous(memory_format=torch.channels_last)):
            # (B, C, k, n/k) -> (B*k, C, n/k): a view, since in channels_last memory positions
            # are the outer dimension.
            parts = flat.reshape(b, c, chunks, -1).transpose(1, 2).reshape(b * chunks, c, -1)
            grams = torch.bmm(parts, parts.transpose(1, 2)).reshape(b, chunks, c, c).sum(1)
        else:
            grams = torch.bmm(flat, flat.transpose(1, 2))
        return grams / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(features.float(), target.float())


def style_loss(features: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor],
               layer_weights: Mapping[str, float]) -> torch.Tensor:
    """Sum over layers of weight * MSE(Gram(features), target Gram).

    ``target_grams[layer]`` is (1, C, C) for one style image, broadcast over the batch.
    """
    total = features[next(iter(layer_weights))].new_zeros((), dtype=torch.float32)
    for layer, weight in layer_weights.items():
        gram = gram_matrix(features[layer])
        total = total + weight * F.mse_loss(gram, target_grams[layer].expand_as(gram))
    return total


def style_loss_per_image(features: Mapping[str, torch.Tensor],
                         target_grams: Mapping[str, torch.Tensor],
                         layer_weights: Mapping[str, float]) -> torch.Tensor:
    """style_loss for each image on its own, (B,): ``target_grams[layer]`` is (B, C, C) (each
    image's own target, for several styles) or (1, C, C). Its mean is style_loss."""
    first = features[next(iter(layer_weights))]
    total = first.new_zeros(first.shape[0], dtype=torch.float32)
    for layer, weight in layer_weights.items():
        gram = gram_matrix(features[layer])
        total = total + weight * (gram - target_grams[layer]).pow(2).mean(dim=(1, 2))
    return total


def total_variation_loss(images: torch.Tensor) -> torch.Tensor:
    """0.5 * sum of squared horizontal and vertical neighbour differences (0-255 units), per image."""
    x = images.float() * 255.0
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return 0.5 * (dx.pow(2).sum() + dy.pow(2).sum()) / images.shape[0]
