"""Evaluation: the functional core, its torchmetrics wrapper and the Lightning callback."""

from sslbench.eval.callback import LocalizationEvaluator
from sslbench.eval.metrics import LocalizationMetrics
from sslbench.eval.protocols import PROTOCOLS, Protocol, get_protocol

__all__ = ["PROTOCOLS", "LocalizationEvaluator", "LocalizationMetrics", "Protocol", "get_protocol"]
