"""sslbench: self-supervised visual sound source localization on one data module, one evaluation
and one command line."""

__version__ = "0.1.0"
