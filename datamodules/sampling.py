"""Training batches as a pure function of (seed, epoch, step), so a run stopped anywhere and resumed
sees the very batches an uninterrupted run sees.

- :class:`EpochSampler`: the order of an epoch drawn from (seed, epoch), split over DDP ranks as
  ``DistributedSampler`` splits it; each index travels with its epoch (``epoch * n + index``).
- :class:`EpochSeeded`: a dataset wrapper that runs each ``__getitem__`` under random generators
  seeded from (seed, epoch, index), so crops, flips, shifted windows and drawn neighbours do not
  depend on which loader process reads the sample, nor on what was read before.
- :class:`ResumableLoader`: a DataLoader that tells Lightning how far into the epoch it is (the
  ``state_dict`` Lightning stores in the checkpoint) and skips that far when a run resumes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler


def world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class EpochSampler(DistributedSampler):
    """``DistributedSampler`` (shuffled by ``seed + epoch``, padded to equal shares) whose indices
    carry their epoch, and which skips the ``skip`` first samples of epoch ``skip_epoch`` (a run
    resumed mid-epoch). Lightning sees a DistributedSampler and leaves it in place under DDP."""

    def __init__(self, dataset: Dataset, seed: int = 0, shuffle: bool = True):
        rank, size = world()
        super().__init__(dataset, num_replicas=size, rank=rank, shuffle=shuffle, seed=seed)
        self.skip_epoch, self.skip = -1, 0

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        indices = list(super().__iter__())
        if self.epoch == self.skip_epoch:
            indices = indices[self.skip :]
        return iter([self.epoch * n + i for i in indices])


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """One 63-bit seed per (run seed, epoch, sample)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(2, np.uint32).astype(np.uint64) @ [1, 1 << 32]) >> 1


@contextmanager
def seeded(seed: int):
    """Run the body with torch (CPU), numpy and random seeded from ``seed``; restore them after."""
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


class EpochSeeded(Dataset):
    """``dataset[index]`` for the key ``epoch * n + index``, under generators seeded by
    (seed, epoch, index). Other attributes are the wrapped dataset's."""

    def __init__(self, dataset: Dataset, seed: int = 0):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str):
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key: int) -> Any:
        epoch, index = divmod(int(key), len(self.dataset))
        with seeded(sample_seed(self.seed, epoch, index)):
            return self.dataset[index]


class ResumableLoader(DataLoader):
    """A training loader whose place in the epoch goes into the checkpoint.

    ``progress`` returns (epoch, batches done in it) when Lightning saves; on resume Lightning
    hands that back through :meth:`load_state_dict` before the first batch is drawn, and the
    sampler skips those batches (or starts the next epoch when the saved one was complete).
    """

    def __init__(self, *args, progress: Callable[[], tuple[int, int]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.progress = progress

    def state_dict(self) -> dict[str, int]:
        epoch, batches = self.progress() if self.progress is not None else (0, 0)
        return {"epoch": int(epoch), "batches": int(batches)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if not isinstance(self.sampler, EpochSampler):
            return
        epoch, batches = state["epoch"], state["batches"]
        if batches >= len(self):  # the saved epoch was complete: the next one starts from its beginning
            self.sampler.set_epoch(epoch + 1)
            return
        # the sampler's epoch is set here too: with loader processes Lightning draws the first
        # indices before it calls set_epoch
        self.sampler.set_epoch(epoch)
        self.sampler.skip_epoch, self.sampler.skip = epoch, batches * (self.batch_size or 1)
