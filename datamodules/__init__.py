"""Datasets and the one ``AudioVisualDataModule`` that serves them to every method.

Names load on first use (``from datamodules import VGGSS``), so a reader imports without
Lightning; :func:`import_all` loads every class, as the CLI needs for short class names.
"""

from importlib import import_module

from sslbench.lazy import lazy_names

_WHERE = {
    "AVBatch": "datamodules.batch",
    "AVDataset": "datamodules.base",
    "AVSBenchS4": "datamodules.avsbench",
    "AudioVisualDataModule": "datamodules.datamodule",
    "DuetComposer": "datamodules.mixtures",
    "FlickrSoundNet": "datamodules.folder",
    "FramesAudioFolder": "datamodules.folder",
    "MUSIC": "datamodules.music",
    "PackedSamples": "datamodules.packed",
    "StackedMixture": "datamodules.mixtures",
    "SwappedAudio": "datamodules.datamodule",
    "SyntheticScenes": "datamodules.synthetic",
    "VGGSS": "datamodules.folder",
    "VGGSound": "datamodules.folder",
    "collate": "datamodules.batch",
}

__getattr__, __all__ = lazy_names(__name__, _WHERE)


def import_all() -> None:
    """Import every reader, so ``class_path: VGGSS`` resolves in configs."""
    for module in set(_WHERE.values()):
        import_module(module)
