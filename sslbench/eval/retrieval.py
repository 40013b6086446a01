"""Cross-modal retrieval Recall@K (SSLalignment Table 6; no reference code exists, evaluation.md A.6).

Re-exported by ``sslbench.eval.functional``. Unverified against any released code: the choice of
embeddings, instance vs class hits and tie handling are ours and documented here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _recall(similarity: Tensor, relevant: Tensor, ks: Sequence[int]) -> dict[int, Tensor]:
    """Queries are rows. The rank of a query's best relevant candidate is the number of irrelevant
    candidates scoring at least as high (ties count against the query, so constant embeddings
    score chance, never 1); a hit at K means rank < K."""
    best_relevant = torch.where(relevant, similarity, float("-inf")).amax(1, keepdim=True)
    rank = ((similarity >= best_relevant) & ~relevant).sum(1)
    return {k: (rank < k).double().mean() for k in ks}


def retrieval_recall(
    image_emb: Tensor, audio_emb: Tensor, ks: Sequence[int] = (1, 5, 10), classes: Tensor | None = None
) -> dict[str, Tensor]:
    """Recall@K in both directions under cosine similarity.

    ``image_emb`` and ``audio_emb``: (N, D) global embeddings of the N pairs, row i of one paired
    with row i of the other. Instance level (default): the only hit is the paired sample. Class
    level (``classes``: (N,) labels): any candidate of the query's class is a hit.
    Returns ``a2i@K`` (audio queries, image gallery) and ``i2a@K``.
    """
    if image_emb.shape[0] != audio_emb.shape[0]:
        raise ValueError(f"{image_emb.shape[0]} image but {audio_emb.shape[0]} audio embeddings")
    similarity = F.normalize(image_emb.double(), dim=1) @ F.normalize(audio_emb.double(), dim=1).T  # (image, audio)
    n = similarity.shape[0]
    if classes is None:
        relevant = torch.eye(n, dtype=torch.bool, device=similarity.device)
    else:
        classes = classes.to(similarity.device)
        relevant = classes[:, None] == classes[None, :]
    a2i = _recall(similarity.T, relevant.T, ks)
    i2a = _recall(similarity, relevant, ks)
    return {**{f"a2i@{k}": v for k, v in a2i.items()}, **{f"i2a@{k}": v for k, v in i2a.items()}}
