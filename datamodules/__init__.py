"""Datasets and the one ``AudioVisualDataModule`` that serves them to every method."""

from datamodules.avsbench import AVSBenchS4
from datamodules.base import AVDataset
from datamodules.batch import AVBatch, collate
from datamodules.datamodule import AudioVisualDataModule, SwappedAudio
from datamodules.folder import VGGSS, FlickrSoundNet, FramesAudioFolder, VGGSound
from datamodules.mixtures import DuetComposer, StackedMixture
from datamodules.music import MUSIC
from datamodules.packed import PackedShards
from datamodules.synthetic import SyntheticScenes

__all__ = [
    "AVBatch",
    "AVSBenchS4",
    "DuetComposer",
    "MUSIC",
    "PackedShards",
    "AVDataset",
    "AudioVisualDataModule",
    "FlickrSoundNet",
    "FramesAudioFolder",
    "StackedMixture",
    "SwappedAudio",
    "SyntheticScenes",
    "VGGSS",
    "VGGSound",
    "collate",
]
