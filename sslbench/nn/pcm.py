"""SSPL's predictive coding module (Song et al., CVPR 2022, Sec. 3.3 and supplement; reference
``pc_net.py`` as read in methods.md 4).

Three prediction layers carry the visual map down to an audio prediction (r_3 = f_v -> r_2 ->
r_1 -> p_0); the audio error e_0 = f_a - p_0 then flows back up, each layer moving by its
prediction error scaled by a learned per-channel rate relu(a_l). Later time steps mix each layer
with the prediction from above by relu(b_l). Every time step has its own BatchNorm layers; the
rates are shared. Output: a 1x1 transposed conv of the refined r_3.

At 224 px (14 x 14 maps) the sizes chain exactly (14 -> 7 -> 3, transposed conv 3 -> 7, bilinear
x2 7 -> 14); at other sizes the upward maps are resized to the layer they update.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _fit(x: Tensor, like: Tensor) -> Tensor:
    return x if x.shape[-2:] == like.shape[-2:] else F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=True)


class PredictiveCoding(nn.Module):
    """Args:
    channels: visual channels (512 for VGG16 conv5_3).
    audio_dim: audio embedding size (128, VGGish).
    steps: computing steps T (5; the paper's Table 5 ablates 1-8).
    """

    def __init__(self, channels: int = 512, audio_dim: int = 128, steps: int = 5):
        super().__init__()
        if steps < 1:
            raise ValueError(f"PCM needs at least one step, got {steps}")
        self.steps = steps
        # feedback (prediction) path, top to bottom: r_3 -> r_2 -> r_1 -> audio
        self.predict_2 = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.MaxPool2d(2))
        self.predict_1 = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.MaxPool2d(2))
        self.predict_0 = nn.Conv2d(channels, audio_dim, 1)
        # feedforward (error) path, bottom to top
        self.error_1 = nn.ConvTranspose2d(audio_dim, channels, 1, bias=False)
        self.error_2 = nn.ConvTranspose2d(channels, channels, 3, stride=2, bias=False)
        self.error_3 = nn.ConvTranspose2d(channels, channels, 3, padding=1, bias=False)
        self.output = nn.ConvTranspose2d(channels, channels, 1)
        # per-channel update rates (a_l, init 1) and mixing rates (b_l, init 0.5), used through ReLU
        self.a = nn.ParameterList([nn.Parameter(torch.ones(1, channels, 1, 1)) for _ in range(3)])
        self.b = nn.ParameterList([nn.Parameter(torch.full((1, channels, 1, 1), 0.5)) for _ in range(3)])
        # per time step: BN of r_2 and r_1 on the way down, of r_1, r_2, r_3 on the way up
        self.bn_down = nn.ModuleList(nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(2)) for _ in range(steps))
        self.bn_up = nn.ModuleList(nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(3)) for _ in range(steps))

    def rate_parameters(self) -> list[nn.Parameter]:
        """a_l and b_l: optimised without weight decay, as in the reference."""
        return [*self.a, *self.b]

    def forward(self, visual: Tensor, audio: Tensor) -> Tensor:
        """visual (B, C, H, W) frozen features; audio (B, A) L2-normalised -> refined (B, C, H, W)."""
        a1, a2, a3 = (F.relu(a) for a in self.a)
        b1, b2, b3 = (F.relu(b) for b in self.b)
        r3 = visual
        r2 = r1 = None
        for t in range(self.steps):
            down, up = self.bn_down[t], self.bn_up[t]
            if t == 0:  # the first predictions are the initial representations themselves
                r2 = predicted_2 = F.gelu(down[0](self.predict_2(r3)))
                r1 = predicted_1 = F.gelu(down[1](self.predict_1(r2)))
            else:  # later ones mix into each layer; its error is taken against the raw prediction
                r3 = F.gelu((1 - b3) * r3 + b3 * visual)
                predicted_2 = self.predict_2(r3)
                r2 = F.gelu(down[0]((1 - b2) * r2 + b2 * predicted_2))
                predicted_1 = self.predict_1(r2)
                r1 = F.gelu(down[1]((1 - b1) * r1 + b1 * predicted_1))
            p0 = F.gelu(self.predict_0(r1)).mean((-2, -1))
            e0 = (audio - p0)[:, :, None, None].expand(-1, -1, *r1.shape[-2:])
            r1 = F.gelu(up[0](r1 + a1 * self.error_1(e0)))
            r2 = F.gelu(up[1](r2 + a2 * _fit(self.error_2(r1 - predicted_1), r2)))
            e2 = F.interpolate(r2 - predicted_2, size=r3.shape[-2:], mode="bilinear", align_corners=True)
            r3 = F.gelu(up[2](r3 + a3 * self.error_3(e2)))
        return self.output(r3)
