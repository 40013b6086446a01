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


class OutputNotWritableError(SSLBenchError):
    """An output folder cannot be created or written to."""


def ensure_writable(folder, what: str = "output folder"):
    """Create ``folder`` if needed and prove it takes a file, before any work is done; else one
    error naming the folder (found at the start, not after an epoch)."""
    import os
    import tempfile
    from pathlib import Path

    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".sslbench-write-test-"):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise OutputNotWritableError(f"cannot write the {what} {folder}: {reason}; choose another with its option "
                                     f"(or fix its permissions)") from None
    if not os.access(folder, os.W_OK):  # e.g. a read-only mount that let the probe through
        raise OutputNotWritableError(f"cannot write the {what} {folder}: permission denied")
    return folder
