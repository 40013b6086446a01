"""Network building blocks shared by the methods."""

from sslbench.nn.backbones import ResNetTrunk, init_like_reference, resnet18_trunk
from sslbench.nn.similarity import av_similarity, soft_threshold_mean

__all__ = ["ResNetTrunk", "av_similarity", "init_like_reference", "resnet18_trunk", "soft_threshold_mean"]
