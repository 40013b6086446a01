"""FNAC-AVL (Sun et al., "Learning Audio-Visual Source Localization via False Negative Aware
Contrastive Learning", CVPR 2023), https://arxiv.org/abs/2303.11302 ; reference
OpenNLPLab/FNAC_AVL ``model.py``, ``train.py``, ``datasets.py``, ``train_*.sh``.

EZ-VSL's encoders, projections and max-MIL loss, plus:
- a Dropout (p 0.9 in every script) on the image trunk's output before the projection, audio 0;
- three regularisers (``sslbench.losses.fnac``): FNS-1 and FNS-2 pull the audio-visual logits'
  distribution towards the audio-audio and image-image similarities (false negatives), TNS the
  confident-foreground similarities towards the audio's (true negatives); 100 x each, added after
  the warm-up epochs (5 in the scripts);
- SpecAugment-style masks on the training spectrograms, as its loader draws them.
The map is EZ-VSL's (cosine / tau); its test uses EZ-VSL's protocol and OGL (alpha 0.4).
"""

from __future__ import annotations

from torch import Tensor, nn

from datamodules.batch import AVBatch
from sslbench.losses.fnac import fnac_regularizers, spectrogram_masks
from sslbench.methods.ezvsl import EZVSL
from sslbench.methods.ogl import ObjectGuidance


class FNAC(EZVSL):
    """EZ-VSL with false-negative / true-negative aware regularisers.

    Args:
        embed_dim: projection width (512).
        tau: logit temperature (0.03).
        image_dropout: dropout on the image trunk's features before the projection (0.9).
        audio_dropout: dropout on the pooled audio features (0).
        fns1_weight: weight of FNS-1, audio-audio vs audio-visual (100).
        tns_weight: weight of TNS, audio-audio vs foreground-foreground (100).
        fns2_weight: weight of FNS-2, image-image vs audio-visual (100).
        warmup_epochs: epochs trained with EZ-VSL's loss alone (5 in the scripts; the argparse default is 3).
        foreground: min-max scaled map threshold of TNS's foreground (0.6).
        spectrogram_masks: the training loader's frequency and time masks (True, as the code).
        vision_weights: ``"imagenet"`` (the code), a file path, or null.
        backbone_width: ResNet-18 width; 64 is the real network.
        lr: Adam learning rate (1e-4).
        weight_decay: Adam weight decay (1e-4 in the scripts).
        object_guidance: OGL at inference (alpha 0.4 in its test.py).
    """

    def __init__(
        self,
        embed_dim: int = 512,
        tau: float = 0.03,
        image_dropout: float = 0.9,
        audio_dropout: float = 0.0,
        fns1_weight: float = 100.0,
        tns_weight: float = 100.0,
        fns2_weight: float = 100.0,
        warmup_epochs: int = 5,
        foreground: float = 0.6,
        spectrogram_masks: bool = True,
        vision_weights: str | None = "imagenet",
        backbone_width: int = 64,
        lr: float = 1e-4,
        weight_decay: float = 1e-4,
        object_guidance: ObjectGuidance | None = None,
    ):
        super().__init__(embed_dim=embed_dim, tau=tau, vision_weights=vision_weights, backbone_width=backbone_width,
                         lr=lr, weight_decay=weight_decay, object_guidance=object_guidance)
        self.save_hyperparameters(ignore=["object_guidance"])
        self.image_dropout, self.audio_dropout = nn.Dropout(image_dropout), nn.Dropout(audio_dropout)
        self.weights = {"fns1": fns1_weight, "tns": tns_weight, "fns2": fns2_weight}
        self.warmup_epochs, self.foreground, self.masks = warmup_epochs, foreground, spectrogram_masks

    def embed(self, image: Tensor, audio: Tensor) -> tuple[Tensor, Tensor]:
        """As EZ-VSL, with FNAC's dropouts on the trunk features (active in training only)."""
        visual = nn.functional.normalize(self.visual_proj(self.image_dropout(self.visual_net(image))), dim=1)
        pooled = self.audio_dropout(self.audio_net(audio).flatten(2).amax(-1))
        return visual, nn.functional.normalize(self.audio_proj(pooled), dim=1)

    def compute_loss(self, batch: AVBatch) -> dict[str, Tensor]:
        audio = spectrogram_masks(batch.audio) if self.masks and self.training else batch.audio
        visual, audio_emb = self.embed(batch.image, audio)
        contrast = self.criterion(visual, audio_emb)
        parts = fnac_regularizers(visual, audio_emb, self.criterion.tau, self.foreground)
        warming_up = self._trainer is not None and self.current_epoch < self.warmup_epochs  # no trainer: the full loss
        total = contrast if warming_up else contrast + sum(self.weights[k] * v for k, v in parts.items())
        return {"loss": total, "contrast": contrast, **parts}
