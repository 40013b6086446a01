"""Evaluation: the functional core (``sslbench.eval.functional``, torch only), its torchmetrics
wrappers and the Lightning callback. Names load on first use, so the functional core and the
protocols import without Lightning."""

from sslbench.lazy import lazy_names

_WHERE = {
    "LocalizationEvaluator": "sslbench.eval.callback",
    "LocalizationMetrics": "sslbench.eval.metrics",
    "PROTOCOLS": "sslbench.eval.protocols",
    "Protocol": "sslbench.eval.protocols",
    "get_protocol": "sslbench.eval.protocols",
}

__getattr__, __all__ = lazy_names(__name__, _WHERE)
