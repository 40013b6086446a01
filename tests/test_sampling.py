"""The training order: a function of (seed, epoch), split over ranks with equal shares and every
sample once per epoch; per-sample augmentation seeded by (seed, epoch, index); a resumed epoch
skips exactly the batches already trained on."""

import torch
from torch.utils.data import Dataset

from datamodules.sampling import EpochSampler, EpochSeeded, ResumableLoader


class Numbers(Dataset):
    def __len__(self):
        return 23

    def __getitem__(self, index):
        return {"index": index, "noise": float(torch.rand(()))}


def order(rank: int, world: int, epoch: int, seed: int = 0) -> list[int]:
    sampler = EpochSampler(Numbers(), seed)
    sampler.num_replicas, sampler.rank = world, rank
    sampler.num_samples = -(-len(sampler.dataset) // world)
    sampler.total_size = sampler.num_samples * world
    sampler.set_epoch(epoch)
    return [key % 23 for key in sampler]


def test_every_rank_gets_an_equal_share_and_an_epoch_covers_every_sample():
    for world in (1, 2, 3, 4):
        shares = [order(rank, world, epoch=1) for rank in range(world)]
        assert len({len(s) for s in shares}) == 1 and set().union(*shares) == set(range(23))
    assert order(0, 1, epoch=1) != order(0, 1, epoch=2) and order(0, 1, epoch=1) == order(0, 1, epoch=1)
    assert order(0, 1, epoch=1, seed=1) != order(0, 1, epoch=1)


def test_augmentation_is_seeded_by_seed_epoch_and_index_not_by_what_came_before():
    data = EpochSeeded(Numbers(), seed=7)
    first = data[2 * 23 + 5]["noise"]  # epoch 2, sample 5
    torch.rand(100)  # anything drawn in between changes nothing
    assert data[2 * 23 + 5]["noise"] == first and data[3 * 23 + 5]["noise"] != first and data[2 * 23 + 6]["noise"] != first
    before = torch.get_rng_state()
    data[0]
    assert torch.equal(torch.get_rng_state(), before)  # the global generator is left as it was


def test_a_resumed_epoch_skips_the_batches_already_trained_on():
    data = Numbers()
    full = ResumableLoader(EpochSeeded(data), batch_size=4, sampler=EpochSampler(data), drop_last=True)
    full.sampler.set_epoch(3)
    uninterrupted = [b["index"].tolist() for b in full]
    resumed = ResumableLoader(EpochSeeded(data), batch_size=4, sampler=EpochSampler(data), drop_last=True)
    resumed.load_state_dict({"epoch": 3, "batches": 2})
    assert [b["index"].tolist() for b in resumed] == uninterrupted[2:]
    finished = ResumableLoader(EpochSeeded(data), batch_size=4, sampler=EpochSampler(data), drop_last=True)
    finished.load_state_dict({"epoch": 3, "batches": 5})  # the whole epoch was done: the next one starts
    assert finished.sampler.epoch == 4 and len(list(finished)) == 5
