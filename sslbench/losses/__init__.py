"""Losses, one module each, tested apart from the methods that use them."""

from sslbench.losses.fnac import fnac_regularizers, spectrogram_masks
from sslbench.losses.infonce import MarginInfoNCE, pool_similarity
from sslbench.losses.lvs import LVSLoss

__all__ = ["LVSLoss", "MarginInfoNCE", "fnac_regularizers", "pool_similarity", "spectrogram_masks"]
