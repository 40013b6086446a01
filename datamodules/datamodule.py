"""AudioVisualDataModule: one data module for every dataset and method."""

from __future__ import annotations

import json
import os
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from datamodules.base import AVDataset, first_unreadable, ids_hash, is_unreadable
from datamodules.batch import AVBatch, Unreadable, collate
from datamodules.mixtures import MIX_SOURCES, is_heard
from datamodules.sampling import EpochSampler, EpochSeeded, ResumableLoader
from datamodules.synthetic import SyntheticScenes
from datamodules.transforms import crop_flip, image_transform, normalize_uint8
from datamodules.views import NeighbourTables, ViewedDataset, ViewSpec
from sslbench.audio import PresetName, build_frontend, get_preset
from sslbench.errors import SSLBenchError


def run_seed() -> int:
    """The run's seed (``seed_everything`` exports it), 0 when none was set."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def test_frame_ids(dataset) -> list[str]:
    """The ids a test set's frames come from (an extended set's non-sounding rows name a video)."""
    frame_key = getattr(dataset, "frame_key", lambda sample_id: sample_id)
    return [frame_key(i) for i in dataset.sample_ids]


def dataset_manifest(dataset) -> dict[str, Any]:
    """A set's manifest (readers of real files keep one; generated sets have nothing missing)."""
    manifest = dataset.manifest() if hasattr(dataset, "manifest") else {
        "dataset": dataset.name, "list": getattr(dataset, "list_name", None), "wanted": len(dataset), "used": len(dataset),
        "missing": [], "excluded": [],
    }
    manifest["ids_hash"] = ids_hash(dataset.sample_ids)
    return manifest


def _in_role(dataset: AVDataset, role: str) -> AVDataset:
    """A synthetic set whose split was left unset takes the split of the role it is used in."""
    if isinstance(dataset, SyntheticScenes) and not dataset.split_chosen:
        return dataset.for_split(role, dataset.num_samples_chosen)
    return dataset


class OtherAudio(Dataset):
    """A test or training set whose images are heard with other audio: the wrapped set's name with
    ``suffix``, its samples, ground truth and everything else (class ids, shifted windows, ...)."""

    def __init__(self, dataset: AVDataset, suffix: str, note: str):
        self.dataset = dataset
        self.name = f"{dataset.name}{suffix}"
        self.list_name = f"{dataset.list_name} ({note})"
        self.evaluation = dataset.evaluation
        self.has_ground_truth = dataset.has_ground_truth
        self.sample_ids = dataset.sample_ids

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str):  # class_id, shifted_waveform, ... of the wrapped set
        if name in ("dataset", "swapped"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


class SwappedAudio(OtherAudio):
    """Each image with the audio of another sample, of another class when classes are known.

    Scores on it show whether a model listens: a model that ignores the audio keeps its score.
    The partner of ``i`` is the first index from ``i + n // 2`` on (cyclically) whose class differs.
    """

    def __init__(self, dataset: AVDataset):
        super().__init__(dataset, "_swapped_audio", "audio swapped")

    def partner(self, index: int) -> int:
        n = len(self.dataset)
        own = self.dataset.class_id(index)
        for step in range(n // 2, n // 2 + n):
            j = (index + step) % n
            if j != index and (own < 0 or self.dataset.class_id(j) != own):
                return j
        return (index + n // 2) % n

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        sample, other = self.dataset[index], self.dataset[self.partner(index)]
        if first_unreadable((sample, other)):
            return first_unreadable((sample, other))
        # everything heard moves: the clip, and a mixture's separate sources
        heard = {k: v for k, v in (other.get("views") or {}).items() if is_heard(k)}
        return {**sample, "waveform": other["waveform"], "views": {**(sample.get("views") or {}), **heard}}


NEGATIVE_AUDIO = ("silence", "noise", "offscreen")


class NegativeAudio(OtherAudio):
    """Each image with audio that does not belong to it (the negative-audio evaluation of Juanola
    et al., ICASSP 2025): ``silence`` (zeros), ``noise`` (white noise at the clip's own RMS, seeded
    by the sample) or ``offscreen`` (another sample's clip, of another class when classes are known:
    ``SwappedAudio``). Logged as ``<dataset>/negative/<kind>``; the gt stays, so a model that
    listens falls to its floors."""

    def __init__(self, dataset: AVDataset, kind: str):
        if kind not in NEGATIVE_AUDIO:
            raise ValueError(f"unknown negative audio {kind!r}; choose from {NEGATIVE_AUDIO}")
        super().__init__(dataset, f"/negative/{kind}", f"negative audio: {kind}")
        self.kind, self.base_name = kind, dataset.name
        self.swapped = SwappedAudio(dataset) if kind == "offscreen" else None

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        if self.swapped is not None:
            return self.swapped[index]
        sample = self.dataset[index]
        if is_unreadable(sample):
            return sample
        wave = sample["waveform"]
        if self.kind == "silence":
            heard = torch.zeros_like(wave)
        else:
            rms = wave.float().square().mean().sqrt().clamp(min=1e-4)
            noise = torch.randn(wave.shape, generator=torch.Generator().manual_seed(int(index)))
            heard = (noise * rms).clamp(-1, 1).to(wave.dtype)
        views = {k: v for k, v in (sample.get("views") or {}).items() if not is_heard(k)}
        return {**sample, "waveform": heard, "views": views}


def as_mixture_of_one(batch: AVBatch, module) -> None:
    """A single-source evaluation batch becomes a mixture of K = 1 for methods that score every set
    through their object maps (IOI, as NoPrior's ``test_step`` with ``concat_num=1``). Its gt frame
    is binarised as ``StackedMixture`` binarises each source's (gt > 0)."""
    if (
        getattr(module, "scores_single_sets_as_mixtures", False) and batch.gt_map is not None
        and batch.gt_frames is None and batch.n_boxes is None and batch.group is None
    ):
        batch.gt_frames = (batch.gt_map > 0).float()[:, None]
        if batch.source_classes is None:
            batch.source_classes = batch.class_id[:, None]


class AudioVisualDataModule(L.LightningDataModule):
    """Frames, audio clips and ground truth for training, validation and any number of test sets.

    With nothing named, every split is :class:`SyntheticScenes`; a synthetic training set also
    provides its own validation and test splits (same classes and mode, disjoint samples).
    Validation is never a test set: a real training set gets validation only when ``val`` is given.

    Args:
        train: training set (default: synthetic).
        val: validation set (default: the synthetic val split when training on synthetic data).
        test: test sets, each logged under its own name (default: the synthetic test split).
        audio_preset: front-end preset of ``sslbench.audio.PRESETS`` (window, rate, spectrogram).
        test_audio_preset: the preset of validation and test sets when a reference's test loader cuts
            its audio otherwise (LVS: ``lvs_test``, the first 10 s); default: ``audio_preset``.
        image_size: side of the square frames fed to the model.
        train_transform: training frames, ``ezvsl`` (Resize(1.1 x) + RandomCrop + HFlip), ``sspl``
            (squashed to 256 x 256 first), ``mssl`` (squashed to the image size + HFlip, ICL) or
            ``moco_v2`` (SSL-TIE: RandomResizedCrop, colour jitter, grey, blur, HFlip).
        test_transform: evaluation frames, ``resize`` (EZ-VSL, the default) or ``resize_center_crop``
            (LVS's test loader).
        device_augmentation: with the ``ezvsl`` training pipeline, loader workers decode and resize
            only; each frame's crop and flip (drawn in the worker, as torchvision draws them) run
            batched on the device (``transforms.crop_flip``), and frames travel as uint8.
        pin_memory: page-locked batches for asynchronous host-to-GPU copies (default: when CUDA is there).
        eval_size: side of the ground-truth maps the evaluation is computed at (224 in every paper).
        batch_size: training batch size per device (the references' 128 is a global size on 1 GPU).
        global_batch_size: when set, the batch summed over devices a paper states (SSPL: 256 on 2 or
            4 GPUs); the per-device batch is derived from the device count at setup and
            ``batch_size`` is ignored.
        eval_batch_size: batch size for validation and test (default: ``batch_size``).
        num_workers: loader processes (default: the number of CPU cores, at most 8).
        swap_test_audio: give each test image the audio of a sample of another class.
        negative_audio: score each single-source test set again with each kind of negative audio
            (``silence``, ``noise``, ``offscreen``); the CLI sets it from ``--evaluator.negative_audio``.
        swap_train_audio: the same for every training image, a control: with no image-sound
            correspondence left to learn, a method that listens must end near its untrained score.
        neighbours: top-k neighbour tables of the training set (``sslbench knn``), for methods that
            draw conceptually similar positives (SSL-Align).
        keep_test_ids_in_train: keep training samples whose ids are in a test set (the public
            ``flickr_144k`` list holds 20 Flickr test ids); by default they are dropped and counted.
            Set it to reproduce a reference that trained on them.

    At setup every set says how many of the samples it wanted are available; the run folder gets
    ``manifests/<role>_<name>.json`` (counts, hash of the ids used, excluded ids) and
    ``<role>_<name>_missing.txt`` (one missing id per line).
    """

    def __init__(
        self,
        train: AVDataset | None = None,
        val: AVDataset | None = None,
        test: list[AVDataset] | None = None,
        audio_preset: PresetName = "ezvsl",
        test_audio_preset: PresetName | None = None,
        image_size: int = 224,
        train_transform: Literal["ezvsl", "sspl", "mssl", "moco_v2"] = "ezvsl",
        test_transform: Literal["resize", "resize_center_crop"] = "resize",
        eval_size: int = 224,
        batch_size: int = 128,
        global_batch_size: int | None = None,
        eval_batch_size: int | None = None,
        num_workers: int | None = None,
        swap_test_audio: bool = False,
        negative_audio: list[Literal["silence", "noise", "offscreen"]] | None = None,
        swap_train_audio: bool = False,
        neighbours: str | None = None,
        keep_test_ids_in_train: bool = False,
        device_augmentation: bool = True,
        pin_memory: bool | None = None,
    ):
        super().__init__()
        self.keep_test_ids_in_train = keep_test_ids_in_train
        self.device_augmentation, self.pin_memory = device_augmentation, pin_memory
        self.preset = get_preset(audio_preset)
        self.test_preset = get_preset(test_audio_preset) if test_audio_preset else self.preset
        if (self.test_preset.sample_rate, self.test_preset.frontend) != (self.preset.sample_rate, self.preset.frontend):
            raise ValueError(f"test_audio_preset {self.test_preset.name!r} must share the sample rate and front-end of "
                             f"audio_preset {self.preset.name!r}: the network sees one kind of input")
        image_transform(image_size, True, train_transform, test_transform)  # unknown names fail here, not in a worker
        self.train_transform, self.test_transform = train_transform, test_transform
        self.global_batch_size = global_batch_size
        self.train_set = _in_role(train if train is not None else SyntheticScenes(), "train")
        if val is None and isinstance(self.train_set, SyntheticScenes):
            val = self.train_set.for_split("val")
        self.val_set = None if val is None else _in_role(val, "val")
        if test is None:
            base = self.train_set if isinstance(self.train_set, SyntheticScenes) else SyntheticScenes()
            test = [base.for_split("test")]
        self.test_sets = [_in_role(d, "test") for d in test]
        self.image_size, self.eval_size = image_size, eval_size
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = min(8, os.cpu_count() or 1) if num_workers is None else num_workers
        self.swap_test_audio, self.swap_train_audio = swap_test_audio, swap_train_audio
        self.negative_audio = list(negative_audio or [])
        self.neighbours = neighbours
        self.unreadable: dict[str, dict[str, str]] = {}  # <role>_<name> -> {id: reason}
        self.frontend = build_frontend(self.preset)
        self.test_frontend = build_frontend(self.test_preset)
        names = [d.name for d in self.test_sets]
        if len(set(names)) != len(names):
            raise ValueError(f"test sets need distinct names to be logged apart, got {names}; set `name:` on each")

    def setup(self, stage: str | None = None) -> None:
        self.derive_batch_size()
        for dataset in [self.train_set, self.val_set, *self.test_sets]:
            if dataset is not None:
                train = dataset is self.train_set
                dataset.configure(
                    image_size=self.image_size, audio=self.preset if train else self.test_preset, train=train,
                    eval_size=self.eval_size, train_transform=self.train_transform, test_transform=self.test_transform,
                    device_augmentation=self.device_augmentation,
                )
        if stage in (None, "fit"):
            self.guard_against_test_ids()
        self.write_manifests(stage)

    def derive_batch_size(self) -> None:
        """The per-device batch from ``global_batch_size`` and the trainer's device count."""
        if self.global_batch_size is None:
            return
        devices = self.trainer.world_size if self.trainer is not None else 1
        if self.global_batch_size % devices:
            raise ValueError(f"global_batch_size {self.global_batch_size} does not split over {devices} devices")
        self.batch_size = self.global_batch_size // devices
        rank_zero_info(f"batch: {self.global_batch_size} in all, {self.batch_size} per device on {devices}")

    def guard_against_test_ids(self) -> int:
        """Drop (or, when asked to keep them, count) training samples that are test samples."""
        test_ids = {i for d in self.test_sets for i in test_frame_ids(d)}
        train_ids = set(self.train_set.sample_ids)
        leaked = train_ids & test_ids
        if not leaked:
            return 0
        names = ", ".join(d.name for d in self.test_sets)
        if self.keep_test_ids_in_train or not hasattr(self.train_set, "exclude"):
            rank_zero_warn(f"{len(leaked)} training samples of {self.train_set.name} are in the test sets ({names}); kept"
                           + ("" if self.keep_test_ids_in_train else f": {type(self.train_set).__name__} cannot exclude ids"))
            return 0
        dropped = self.train_set.exclude(leaked)
        if not self.train_set.sample_ids:
            raise SSLBenchError(
                f"all {len(dropped)} training samples of {self.train_set.name} are test samples ({names}), so none is left "
                "to train on; --data.keep_test_ids_in_train true keeps them"
            )
        rank_zero_info(f"{self.train_set.name}: dropped {len(dropped)} training samples whose ids are in the test sets "
                       f"({names}); data.keep_test_ids_in_train true keeps them")
        return len(dropped)

    def role_of(self, dataloader_idx: int) -> str:
        """``<role>_<name>`` of the set the current loader reads (the manifests' keys)."""
        trainer = self.trainer
        sets = self.test_datasets if trainer is not None and trainer.testing else []
        if dataloader_idx < len(sets):  # a negative-audio pass counts under its test set
            return f"test_{getattr(sets[dataloader_idx], 'base_name', sets[dataloader_idx].name)}"
        if trainer is not None and (trainer.validating or trainer.sanity_checking) and self.val_set is not None:
            return f"val_{self.val_set.name}"
        return f"train_{self.train_set.name}"

    def count_unreadable(self, bad: dict[str, str], dataloader_idx: int = 0) -> None:
        """Record unreadable samples (whichever loader process met them); warn once per sample."""
        seen = self.unreadable.setdefault(self.role_of(dataloader_idx), {})
        for sample_id, reason in bad.items():
            if sample_id not in seen:
                seen[sample_id] = reason
                rank_zero_warn(f"{self.role_of(dataloader_idx)}: skipping unreadable sample {sample_id} ({reason})")

    def manifests(self, stage: str | None = None) -> dict[str, dict[str, Any]]:
        """``{<role>_<name>: manifest}`` of every set the stage reads (all for None)."""
        roles = [("train", self.train_set), ("val", self.val_set), *(("test", d) for d in self.test_sets)]
        used = {"fit": ("train", "val", "test"), "validate": ("val",), "test": ("test",), "predict": ("test",)}.get(stage)
        out = {f"{role}_{d.name}": dataset_manifest(d) for role, d in roles if d is not None and (used is None or role in used)}
        for key, manifest in out.items():  # what could not be read this run, beside what was used
            bad = self.unreadable.get(key, {})
            manifest["unreadable"] = len(bad)
            manifest["unreadable_ids"] = sorted(bad)
        return out

    def write_manifests(self, stage: str | None, announce: bool = True) -> None:
        """Write ``manifests/`` (at setup, and again with the unreadable counts as a run goes on:
        ``announce=False`` then skips the log lines and the logger record)."""
        trainer = self.trainer
        manifests = self.manifests(stage)
        for key, m in manifests.items():
            if announce and (m["used"] < m["wanted"] or m.get("excluded")):
                rank_zero_info(f"{key}: {m['used']} of {m['wanted']} samples used ({len(m['missing'])} missing, "
                               f"{len(m.get('excluded', []))} excluded)")
        if trainer is None or not trainer.is_global_zero:
            return
        from sslbench.eval.callback import run_dir

        folder = run_dir(trainer) / "manifests"
        folder.mkdir(parents=True, exist_ok=True)
        for key, m in manifests.items():
            (folder / f"{key}_missing.txt").write_text("".join(f"{i}\n" for i in m["missing"]))
            summary = {k: v for k, v in m.items() if k != "missing"} | {"missing": len(m["missing"])}
            (folder / f"{key}.json").write_text(json.dumps(summary, indent=2) + "\n")
        if announce and trainer.logger is not None and stage in (None, "fit"):
            trainer.logger.log_hyperparams({"data": {k: {"used": m["used"], "wanted": m["wanted"], "ids_hash": m["ids_hash"]}
                                                     for k, m in manifests.items()}})

    @property
    def test_datasets(self) -> list[Dataset]:
        """The test sets as the loaders see them (wrapped when ``swap_test_audio``), then each
        single-source or extended one again with every ``negative_audio`` kind."""
        sets: list[Dataset] = [SwappedAudio(d) if self.swap_test_audio else d for d in self.test_sets]
        for d in self.test_sets:
            if d.evaluation in ("single", "extended"):
                sets += [NegativeAudio(d, kind) for kind in self.negative_audio]
        return sets

    def _loader(self, dataset: Dataset, train: bool) -> DataLoader:
        seed = run_seed()
        # the loaders draw their worker seeds from their own generator, never from the global one,
        # so the model's randomness (dropout) is the same whether a run was resumed or not
        common = dict(
            num_workers=self.num_workers, persistent_workers=self.num_workers > 0, collate_fn=collate,
            pin_memory=torch.cuda.is_available() if self.pin_memory is None else self.pin_memory,
            generator=torch.Generator().manual_seed(seed),
        )
        if isinstance(dataset, IterableDataset):  # a streamed set of one's own shuffles and splits itself
            return DataLoader(dataset, batch_size=self.batch_size if train else self.eval_batch_size, drop_last=train, **common)
        if not train:
            return DataLoader(dataset, batch_size=self.eval_batch_size, shuffle=False, **common)
        # batches as a function of (seed, epoch, step): exact resume, any number of workers
        return ResumableLoader(
            EpochSeeded(dataset, seed), batch_size=self.batch_size, sampler=EpochSampler(dataset, seed),
            drop_last=True,  # EZ-VSL trains with drop_last: every step sees a full set of negatives
            progress=self.train_progress, **common,
        )

    def train_progress(self) -> tuple[int, int]:
        """(epoch, batches done in it) of the running fit, for the checkpoint."""
        trainer = self.trainer
        if trainer is None:
            return 0, 0
        return trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def train_dataloader(self) -> DataLoader:
        if len(self.train_set) < self.batch_size:
            knob = (f"data.global_batch_size ({self.global_batch_size} over the devices)" if self.global_batch_size
                    else "data.batch_size")
            raise SSLBenchError(
                f"training set {self.train_set.name} has {len(self.train_set)} samples, fewer than one "
                f"batch of {self.batch_size} (batches drop the remainder); lower {knob}"
            )
        return self._loader(self.viewed_train_set(), train=True)

    def viewed_train_set(self, module: L.LightningModule | None = None) -> Dataset:
        """The training set with the extra views the method being trained (or ``module``) asks for."""
        if module is None and self.trainer is not None:
            module = self.trainer.lightning_module
        spec = getattr(module, "train_views", None) or ViewSpec()
        if self.swap_train_audio and isinstance(self.train_set, IterableDataset):
            raise ValueError("swap_train_audio needs an indexed training set; a streamed one cannot pair samples")
        heard = SwappedAudio(self.train_set) if self.swap_train_audio else self.train_set
        if spec.empty:
            return heard
        if isinstance(self.train_set, IterableDataset):
            raise ValueError(f"{type(module).__name__} trains on extra views of each sample, which a streamed set cannot give; "
                             "pack it with `sslbench prepare --pack` (PackedSamples reads by index)")
        tables = NeighbourTables.load(self.neighbours) if spec.conceptual and self.neighbours else None
        return ViewedDataset(heard, spec, tables)

    def val_dataloader(self) -> DataLoader | list:
        return [] if self.val_set is None else self._loader(self.val_set, train=False)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._loader(d, train=False) for d in self.test_datasets]

    def predict_dataloader(self) -> list[DataLoader]:
        return self.test_dataloader()

    def on_after_batch_transfer(self, batch: AVBatch | Unreadable, dataloader_idx: int) -> AVBatch | Unreadable:
        """Count what could not be read; compute the audio front-end batched, on the batch's device."""
        if batch.unreadable:
            self.count_unreadable(batch.unreadable, dataloader_idx)
        if isinstance(batch, AVBatch):
            as_mixture_of_one(batch, self.trainer.lightning_module if self.trainer is not None else None)
            if batch.crops is not None:  # the training pipeline's crop and flip, batched here
                batch.image = crop_flip(batch.image, batch.crops, self.image_size)
                batch.crops = None
            if batch.image.dtype == torch.uint8:  # shipped as bytes (packed data): normalise here
                batch.image = normalize_uint8(batch.image)
            for key in [k for k in batch.views if k.startswith("image") and batch.views[k].dtype == torch.uint8]:
                batch.views[key] = normalize_uint8(batch.views[key])
            evaluating = self.trainer is not None and not self.trainer.training
            frontend = (self.test_frontend if evaluating else self.frontend).to(batch.waveform.device)
            sources = batch.views.pop(MIX_SOURCES, None)
            if sources is not None:  # a mixture heard as the mean of its sources' log-spectrograms
                batch.audio = frontend(sources.flatten(0, 1)).unflatten(0, sources.shape[:2]).mean(1)
            else:
                batch.audio = frontend(batch.waveform)
            for key in [k for k in batch.views if k.startswith("waveform_")]:
                batch.views["audio_" + key.removeprefix("waveform_")] = frontend(batch.views[key])
        return batch
