"""FNAC's false-negative and true-negative aware regularisers (Sun et al., CVPR 2023,
https://arxiv.org/abs/2303.11302); reference OpenNLPLab/FNAC_AVL ``model.py`` ``FNAC.calculate_loss``.

With unit-norm image maps v (B, C, h, w) and audio a (B, C), tau the temperature:
    logits_nm  = max_hw <v_n(h, w), a_m> / tau                       (EZ-VSL's max-MIL, B x B)
    A_aud      = a a^T / tau                                         (audio-audio similarity)
    A_img      = mean_hw(v) mean_hw(v)^T / tau                       (image-image, mean-pooled)
    f_n        = mean_hw(v_n * [minmax(S_nn) > 0.6])                  (the confident foreground;
                 minmax(x) = (x - min) / (max - min + 1e-5); the mean runs over every cell)
    A_frg      = f f^T / tau
    FNS-1 = L1(softmax(A_aud), softmax(logits)), TNS = L1(softmax(A_aud), softmax(A_frg)),
    FNS-2 = L1(softmax(A_img), softmax(logits)),     each softmax over rows, L1 the mean.
The training loss adds them, weighted (100 each in every script), to EZ-VSL's two-way cross
entropy once the warm-up epochs are over.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sslbench.nn.similarity import av_similarity


def fnac_regularizers(visual: Tensor, audio: Tensor, tau: float, foreground: float = 0.6) -> dict[str, Tensor]:
    """``{"fns1", "tns", "fns2"}`` of a batch (see the module docstring); ``foreground`` is the
    code's ``high_conf_thresh`` on the min-max scaled own-pair map."""
    visual, audio = visual.float(), audio.float()
    sim = av_similarity(visual, audio, pairwise=True) / tau  # (B, B, h, w)
    logits = sim.flatten(-2).amax(-1)
    own = torch.diagonal(sim, dim1=0, dim2=1).permute(2, 0, 1)  # (B, h, w)
    lo, hi = own.amin((1, 2), keepdim=True), own.amax((1, 2), keepdim=True)
    confident = ((own - lo) / (hi - lo + 1e-5)) > foreground
    frg = (visual * confident[:, None]).flatten(2).mean(-1)
    pooled = visual.mean((-2, -1))
    audio_attn, image_attn, frg_attn = audio @ audio.T / tau, pooled @ pooled.T / tau, frg @ frg.T / tau
    soft = lambda x: torch.softmax(x, dim=1)  # noqa: E731
    return {
        "fns1": F.l1_loss(soft(audio_attn), soft(logits)),
        "tns": F.l1_loss(soft(audio_attn), soft(frg_attn)),
        "fns2": F.l1_loss(soft(image_attn), soft(logits)),
    }


def spectrogram_masks(audio: Tensor, max_width: int = 10) -> Tensor:
    """FNAC's training-time SpecAugment, as its ``datasets.py`` applies it to each (1, F, T) log
    spectrogram (zeros, before the /12 scaling, so zeros here too): ``FrequencyMask`` zeroes rows
    [s, s + w) with s drawn over the *time* length T and w in [0, max_width); ``TimeMask`` zeroes
    columns [s, s + w) with s drawn over the *frequency* count F (past T it masks nothing). Drawn
    per sample on the batch's device, no host sync. ``audio``: (B, 1, F, T)."""
    b, _, freqs, times = audio.shape
    device = audio.device
    draw = lambda high: torch.randint(0, high, (b, 1), device=device)  # noqa: E731
    row_start, row_width, col_start, col_width = draw(times), draw(max_width), draw(freqs), draw(max_width)
    rows, cols = torch.arange(freqs, device=device)[None], torch.arange(times, device=device)[None]
    masked_rows = (rows >= row_start) & (rows < row_start + row_width)  # (B, F)
    masked_cols = (cols >= col_start) & (cols < col_start + col_width)  # (B, T)
    return audio.masked_fill(masked_rows[:, None, :, None] | masked_cols[:, None, None, :], 0.0)
