"""Object-guided localization (OGL, Mo & Morgado, ECCV 2022): an objectness prior for inference.

A separate, frozen ImageNet ResNet-18 (never the method's trained encoder, methods.md 9.8) gives
obj = mean_c |layer4| (7 x 7); it is upsampled like the audio-visual map and mixed with it
(evaluation.md A.2). Each reference normalises the two maps its own way (``normalization``):
- ``minmax`` (EZ-VSL, SSPL): final = minmax(alpha * minmax(av) + (1 - alpha) * minmax(obj));
- ``lvs`` (SSL-Align): the same with LVS's inverted min-max 1 - minmax(-x), which differs from
  min-max only on constant maps (1 + c instead of c);
- ``fixed_range`` (SLAVC, AVGN ``test.py``): av scaled over its fixed range ([-1/tau, 1/tau] for
  EZ-VSL-style maps) and obj over [0, 2.5] by ``(x - min) / (max - min)``, not clipped (an object
  map above 2.5 scores above 1, as there), mixed, not re-normalised per image, so the absolute
  0.5 threshold keeps its meaning.
alpha = 0.4 in EZ-VSL, SSPL and SSL-Align, 0.9 in SLAVC's README, 0.3 in AVGN's.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from sslbench.eval.functional import min_max, upsample
from sslbench.nn.backbones import resnet18_trunk

NORMALIZATIONS = ("minmax", "lvs", "fixed_range")
#: SLAVC / AVGN scale the object map over [0, OBJECT_RANGE]
OBJECT_RANGE = 2.5


def lvs_min_max(maps: Tensor) -> Tensor:
    """``1 - normalize_img(-x)``, LVS's inverted per-image min-max."""
    return 1 - min_max(-maps)


class ObjectGuidance(nn.Module):
    """Args:
    alpha: weight of the audio-visual map in the mix (EZ-VSL 0.4).
    weights: ``"imagenet"`` (torchvision's ResNet-18, from the local cache) or a file path.
    normalization: ``"minmax"`` (EZ-VSL), ``"lvs"`` (SSL-Align) or ``"fixed_range"`` (SLAVC, AVGN);
        null (the default): the one of the method's own reference (``LocalizationMethod.ogl_normalization``).
    """

    def __init__(self, alpha: float = 0.4, weights: str = "imagenet", normalization: Literal["minmax", "lvs", "fixed_range"] | None = None):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if normalization is not None and normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown OGL normalization {normalization!r}; choose one of {NORMALIZATIONS}")
        self.alpha, self.normalization = alpha, normalization
        self.net = resnet18_trunk(3, 64, 2, weights=weights)
        self.net.requires_grad_(False)
        self.net.eval()

    def train(self, mode: bool = True) -> ObjectGuidance:
        return super().train(False)  # frozen: BatchNorm keeps its ImageNet statistics

    @torch.no_grad()
    def object_map(self, image: Tensor) -> Tensor:
        """(B, h, w) objectness: channel mean of |layer4|."""
        return self.net(image).abs().mean(1)

    @torch.no_grad()
    def refine(self, maps: Tensor, image: Tensor, mode: str, av_range: tuple[float, float] | None = None) -> Tensor:
        """Mix raw (B, H, W) audio-visual maps with the upsampled object map; scores in [0, 1]
        (``fixed_range``: as the fixed ranges put them, which can leave [0, 1])."""
        obj = upsample(self.object_map(image).float(), maps.shape[-2:], mode)
        if self.normalization == "fixed_range":
            if av_range is None:
                raise ValueError("fixed_range OGL needs a method whose maps have a fixed range (cosine or cosine / tau)")
            low, high = av_range
            av = (maps - low) / (high - low)
            return self.alpha * av + (1 - self.alpha) * obj / OBJECT_RANGE
        norm = lvs_min_max if self.normalization == "lvs" else min_max  # None (no method chose): EZ-VSL's
        return norm(self.alpha * norm(maps) + (1 - self.alpha) * norm(obj))
