"""pytorch/examples' fast_neural_style TransformerNet, re-implemented as the speed reference.

The benchmark (scripts/benchmark.py infer --compare) times our inference path against this
network in fp32 eager mode, in the same process, so the ratio is honest. It follows the
original layer for layer: reflection-padded convolutions, instance norm (affine), five residual
blocks, nearest-neighbour x2 upsampling before two convolutions, and no output activation (its
outputs are 0-255 pixel values, clamped by the caller). Not used for anything else.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvLayer(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1,
                 upsample: int | None = None):
        super().__init__()
        self.upsample = upsample
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = nn.functional.interpolate(x, scale_factor=self.upsample, mode="nearest")
        return self.conv(self.pad(x))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1, self.in1 = ConvLayer(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True)
        self.conv2, self.in2 = ConvLayer(channels, channels, 3), nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.in2(self.conv2(torch.relu(self.in1(self.conv1(x)))))


class ReferenceTransformerNet(nn.Module):
    def __init__(self):
        super().__init__()
        norm = lambda c: nn.InstanceNorm2d(c, affine=True)
        self.conv1, self.in1 = ConvLayer(3, 32, 9), norm(32)
        self.conv2, self.in2 = ConvLayer(32, 64, 3, stride=2), norm(64)
        self.conv3, self.in3 = ConvLayer(64, 128, 3, stride=2), norm(128)
        self.res = nn.Sequential(*[ResidualBlock(128) for _ in range(5)])
        self.up1, self.in4 = ConvLayer(128, 64, 3, upsample=2), norm(64)
        self.up2, self.in5 = ConvLayer(64, 32, 3, upsample=2), norm(32)
        self.out = ConvLayer(32, 3, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.in1(self.conv1(x)))
        y = torch.relu(self.in2(self.conv2(y)))
        y = torch.relu(self.in3(self.conv3(y)))
        y = self.res(y)
        y = torch.relu(self.in4(self.up1(y)))
        y = torch.relu(self.in5(self.up2(y)))
        return self.out(y)
