"""Object-guided localization (OGL, Mo & Morgado, ECCV 2022): an objectness prior for inference.

A separate, frozen ImageNet ResNet-18 (never the method's trained encoder, methods.md 9.8) gives
obj = mean_c |layer4| (7 x 7); it is upsampled like the audio-visual map and mixed:
    final = minmax(alpha * minmax(av) + (1 - alpha) * minmax(obj))
alpha = 0.4 in EZ-VSL and SSPL, 0.9 in SLAVC's README, 0.3 in AVGN's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sslbench.eval.functional import min_max, upsample
from sslbench.nn.backbones import resnet18_trunk


class ObjectGuidance(nn.Module):
    """Args:
    alpha: weight of the audio-visual map in the mix (EZ-VSL 0.4).
    weights: ``"imagenet"`` (torchvision's ResNet-18, from the local cache) or a file path.
    """

    def __init__(self, alpha: float = 0.4, weights: str = "imagenet"):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = alpha
        self.net = resnet18_trunk(3, 64, 2, weights=weights)
        self.net.requires_grad_(False)
        self.net.eval()

    def train(self, mode: bool = True) -> "ObjectGuidance":
        return super().train(False)  # frozen: BatchNorm keeps its ImageNet statistics

    @torch.no_grad()
    def object_map(self, image: Tensor) -> Tensor:
        """(B, h, w) objectness: channel mean of |layer4|."""
        return self.net(image).abs().mean(1)

    @torch.no_grad()
    def refine(self, scores: Tensor, image: Tensor, mode: str) -> Tensor:
        """Mix min-max normalised (B, H, W) scores with the upsampled, normalised object map."""
        obj = min_max(upsample(self.object_map(image).float(), scores.shape[-2:], mode))
        return min_max(self.alpha * scores + (1 - self.alpha) * obj)
