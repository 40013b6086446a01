"""VGG trunks for SSPL (methods.md 4): torchvision's VGG16 up to conv5_3 and VGGish.

Module names and indices follow torchvision's ``vgg16().features`` and torchvggish's ``VGGish``
(``features.*``, ``embeddings.*``), so their released weights load by key. ``width`` < 64 scales
every layer down for tests and CPU runs; weights load at any width whose shapes they fit (the
released ones at 64, ``sslbench.bench.encoders``' synthetic stand-ins at 8).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from sslbench.errors import WeightsUnavailableError

VGG16_FILE = "vgg16-397923af.pth"  # torchvision VGG16_Weights.IMAGENET1K_V1
VGGISH_FILE = "vggish-10086976.pth"  # torchvggish (harritaylor) release used by SSPL

VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
VGGISH_CONFIG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")


def _vgg_layers(config, in_channels: int, scale: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            out = max(1, int(item * scale))
            layers += [nn.Conv2d(in_channels, out, 3, padding=1), nn.ReLU(inplace=True)]
            in_channels = out
    return nn.Sequential(*layers)


def read_state_dict(weights: str, default_file: str, hint: str) -> dict[str, Tensor]:
    """A state dict from a file path, or from torch's hub cache for ``"imagenet"``-like names."""
    path = Path(weights).expanduser()
    if not path.is_file():
        cache = Path(torch.hub.get_dir()) / "checkpoints" / default_file
        if weights in ("imagenet", "vggish") and cache.is_file():
            path = cache
        else:
            raise WeightsUnavailableError(f"{hint} weights not found at {path}; place {default_file} there or at {cache}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state)


def load_matching(module: nn.Module, state: dict[str, Tensor], what: str) -> None:
    """Load every key of ``module`` from ``state``; name what is missing or does not fit."""
    own = module.state_dict()
    missing = sorted(k for k in own if k not in state)
    wrong = sorted(k for k in own if k in state and state[k].shape != own[k].shape)
    if missing or wrong:
        raise WeightsUnavailableError(
            f"{what} weights do not fit: {len(missing)} keys missing {missing[:6]}, {len(wrong)} of the wrong shape {wrong[:6]}"
        )
    module.load_state_dict({k: state[k] for k in own})


class VGG16Conv53(nn.Module):
    """VGG16 ``features[0:29]``: up to conv5_3 without its ReLU and without pool5, so values may be
    negative (SSPL ``frame_net``). 224 -> 512 x 14 x 14."""

    def __init__(self, width: int = 64, weights: str | None = None):
        super().__init__()
        self.features = _vgg_layers(VGG16_CONFIG, 3, width / 64)[:29]
        self.out_channels = self.features[28].out_channels
        if weights is not None:
            load_matching(self, _vgg16_state(weights), "VGG16")

    def forward(self, image: Tensor) -> Tensor:
        return self.features(image)


def _vgg16_state(weights: str) -> dict[str, Tensor]:
    if weights == "imagenet":
        from torchvision.models import VGG16_Weights

        try:
            return VGG16_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=True)
        except Exception as err:
            cache = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE
            raise WeightsUnavailableError(
                f"ImageNet VGG16 weights are not available ({type(err).__name__}). Place torchvision's {VGG16_FILE} at "
                f"{cache}, or pass a file path"
            ) from None
    return read_state_dict(weights, VGG16_FILE, "VGG16")


class VGGish(nn.Module):
    """VGGish without its PCA post-processing: (N, 1, 96, 64) log-mel examples -> (N, 128),
    each fully connected layer followed by ReLU (the 128-d output is post-ReLU, as in torchvggish).

    The conv map is flattened channels-last before the fully connected layers, the order the
    released weights (converted from TensorFlow) expect.
    """

    def __init__(self, width: int = 64, weights: str | None = None):
        super().__init__()
        scale = width / 64
        self.features = _vgg_layers(VGGISH_CONFIG, 1, scale)
        channels, hidden = self.features[13].out_channels, max(1, int(4096 * scale))
        self.embeddings = nn.Sequential(
            nn.Linear(channels * 6 * 4, hidden), nn.ReLU(True), nn.Linear(hidden, hidden), nn.ReLU(True),
            nn.Linear(hidden, 128), nn.ReLU(True),
        )
        if weights is not None:
            load_matching(self, read_state_dict(weights, VGGISH_FILE, "VGGish"), "VGGish")

    def forward(self, examples: Tensor) -> Tensor:
        x = self.features(examples)
        return self.embeddings(x.permute(0, 2, 3, 1).flatten(1))
