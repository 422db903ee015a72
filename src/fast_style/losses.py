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


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) Gram matrices divided by C*H*W, computed in fp32."""
    b, c, h, w = features.shape
    with torch.autocast(features.device.type, enabled=False):
        flat = features.float().reshape(b, c, h * w)
        return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


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
