"""ResNet-18 trunks in the two families the papers use (methods.md section 9.1).

- ``layer4_stride=2``: torchvision's ResNet-18 (224 -> 7 x 7; EZ-VSL, marginNCE, SLAVC, NoPrior).
- ``layer4_stride=1``: the "LVS-style" ResNet-18 (224 -> 14 x 14; LVS, SSL-Align, ICL).

Module names follow torchvision, so ImageNet weights and reference checkpoints load by key.
``width`` < 64 builds a narrow trunk for tests and CPU demos; ImageNet weights fit width 64, and
weights of another width load where every shape fits (``sslbench.bench.encoders``' stand-ins).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock

from sslbench.errors import WeightsUnavailableError

IMAGENET_FILE = "resnet18-f37072fd.pth"  # torchvision ResNet18_Weights.IMAGENET1K_V1


class ResNetTrunk(nn.Module):
    """ResNet-18 without pooling and classifier: (B, C_in, H, W) -> (B, 8 * width, H/32, W/32)."""

    def __init__(self, in_channels: int = 3, width: int = 64, layer4_stride: int = 2):
        super().__init__()
        if layer4_stride not in (1, 2):
            raise ValueError(f"layer4_stride must be 1 or 2, got {layer4_stride}")
        self.inplanes = width
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(width, 1)
        self.layer2 = self._make_layer(2 * width, 2)
        self.layer3 = self._make_layer(4 * width, 2)
        self.layer4 = self._make_layer(8 * width, layer4_stride)
        self.out_channels = 8 * width
        self.width = width
        for m in self.modules():  # torchvision's own initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample), BasicBlock(planes, planes)]
        self.inplanes = planes
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def imagenet_state_dict() -> dict[str, Tensor]:
    """torchvision's ImageNet ResNet-18 weights from the local torch hub cache (or a download)."""
    from torchvision.models import ResNet18_Weights

    cache = Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE
    try:
        return ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # no network, proxy, corrupt download: all end the same way
        raise WeightsUnavailableError(
            f"ImageNet ResNet-18 weights are not available ({type(err).__name__}: {err}). "
            f"Place torchvision's {IMAGENET_FILE} at {cache}, pass a file path as the weights "
            "argument, or set it to null to train from random initialisation on purpose."
        ) from None


def load_trunk_weights(trunk: ResNetTrunk, weights: str | None) -> ResNetTrunk:
    """Load ``"imagenet"`` or a file path into ``trunk``; ``None`` keeps the random init."""
    if weights is None:
        return trunk
    if weights == "imagenet":
        state = imagenet_state_dict()
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"backbone weights file not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    if trunk.conv1.in_channels != state["conv1.weight"].shape[1]:
        raise ValueError(
            f"weights expect {state['conv1.weight'].shape[1]} input channels, trunk has {trunk.conv1.in_channels}"
        )
    own = trunk.state_dict()  # ImageNet weights fit width 64; the synthetic stand-ins their own width
    wrong = sorted(k for k in own if k in state and state[k].shape != own[k].shape)
    if wrong:
        raise WeightsUnavailableError(f"weights do not fit this ResNet-18 trunk (width {trunk.width}): wrong shapes for {wrong[:6]}")
    missing, unexpected = trunk.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WeightsUnavailableError(
            f"weights do not fit a ResNet-18 trunk: missing {sorted(missing)}, unexpected {sorted(unexpected)}"
        )
    return trunk


def resnet18_trunk(
    in_channels: int = 3, width: int = 64, layer4_stride: int = 2, weights: str | None = None
) -> ResNetTrunk:
    return load_trunk_weights(ResNetTrunk(in_channels, width, layer4_stride), weights)


def init_like_reference(module: nn.Module) -> None:
    """EZ-VSL / LVS re-initialisation: Kaiming-normal convs (fan_out), BN weight ~ N(1, 0.02),
    Linear weight trunc-normal std 0.01 (biases keep PyTorch's default)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.01)
