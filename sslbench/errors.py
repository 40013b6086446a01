"""Errors a user can fix; the CLI prints their message alone, without a traceback."""


class SSLBenchError(Exception):
    """Base class for errors whose message says what to change."""


class DatasetNotFoundError(SSLBenchError):
    """A dataset root or annotation file is missing."""

    def __init__(self, dataset: str, path, hint: str = ""):
        self.path = path
        super().__init__(
            f"{dataset}: {path} does not exist. "
            + (hint or "Point the config at your copy, e.g. --data.train.root /your/path.")
        )


class WeightsUnavailableError(SSLBenchError):
    """Pretrained weights were asked for and cannot be loaded."""
