"""Training speed switches that change no number: channels-last convolutions and ``torch.compile``.

    sslbench fit ... --speed.channels_last true --speed.compile true   (--model.compile true works too)
    sslbench fit ... --config experiments/trainer/gpu_bf16.yaml        # channels-last on, compile off

Channels-last stores (B, C, H, W) tensors as (B, H, W, C) in memory, the layout cuDNN's tensor-core
convolutions want under bf16/fp16; the module's conv weights and each batch's image and audio are
converted once. ``compile`` compiles each convolutional trunk (ResNet, VGG, VGGish) in place
(``nn.Module.compile``: checkpoint keys unchanged); the small heads, losses and per-sample
clustering stay eager. ``python -m sslbench.bench.train --compile`` measures what compiling gives.
"""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from sslbench.errors import SSLBenchError


def trunks(module: nn.Module) -> list[nn.Module]:
    """The convolutional trunks of a method, outermost first (not nested ones twice)."""
    from sslbench.nn.backbones import ResNetTrunk
    from sslbench.nn.vgg import VGG16Conv53, VGGish

    found: list[nn.Module] = []
    for child in module.modules():
        if isinstance(child, (ResNetTrunk, VGG16Conv53, VGGish)) and not any(child in set(f.modules()) for f in found):
            found.append(child)
    return found


def channels_last(x):
    """A 4-D tensor in channels-last memory order; anything else as it is."""
    return x.contiguous(memory_format=torch.channels_last) if isinstance(x, torch.Tensor) and x.dim() == 4 else x


class Speed(Callback):
    """Args:
    channels_last: convert the conv nets and each batch's frames and spectrograms to channels-last.
    compile: ``torch.compile`` each convolutional trunk (first steps are slow while it compiles).
    """

    def __init__(self, channels_last: bool = False, compile: bool = False):
        self.channels_last, self.compile = channels_last, compile

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.channels_last:
            pl_module.to(memory_format=torch.channels_last)
        if self.compile:
            compiled = []
            for trunk in trunks(pl_module):
                try:
                    trunk.compile()
                except Exception as err:  # no compiler backend for this device / platform
                    raise SSLBenchError(
                        f"torch.compile is unavailable here ({type(err).__name__}: {err}); run with "
                        "--speed.compile false, or install a toolchain torch.compile supports"
                    ) from None
                compiled.append(type(trunk).__name__)
            rank_zero_info(f"Speed: compiled {len(compiled)} trunks ({', '.join(compiled)})")

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.channels_last and hasattr(batch, "image"):
            batch.image, batch.audio = channels_last(batch.image), channels_last(batch.audio)
            batch.views = {k: channels_last(v) for k, v in batch.views.items()}
