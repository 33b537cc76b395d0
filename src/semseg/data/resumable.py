"""Training data order and augmentation as a pure function of (seed, epoch, sample index).

A plain DataLoader draws its shuffle from the global RNG when an epoch starts, and albumentations
seeds each pipeline from fresh entropy, so neither can be replayed: a run resumed mid-epoch would
see other batches, augmented differently. Here the permutation depends only on (seed, epoch), as
with DistributedSampler, and every sample is augmented with RNGs seeded from (seed, epoch, index),
so a resumed run skips the batches already trained on and continues with exactly the batches, and
augmentations, of an uninterrupted run. Augmentations no longer depend on the number of workers
or processes either.
"""

import contextlib
import itertools
import os
import random
from collections.abc import Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 32-bit seed for one sample in one epoch."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


@contextlib.contextmanager
def seeded_rngs(seed: int) -> Iterator[None]:
    """Seed Python's, NumPy's and torch's global RNGs for a block, then put back their states.

    Covers transforms that use the global RNGs without disturbing the training's own stream.
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


class SeededSamples(Dataset):
    """Wraps a dataset so that item `(index, seed)` is sample `index` augmented under `seed`.

    A plain `index` (samplers other than ResumableSampler, e.g. Lightning's for
    `overfit_batches`) gets the seed of epoch 0, so its augmentation is still reproducible.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        if not isinstance(key, tuple):
            key = (int(key), sample_seed(int(os.environ.get("PL_GLOBAL_SEED", 0)), 0, int(key)))
        index, seed = key
        transform = getattr(self.dataset, "transform", None)
        if hasattr(transform, "set_random_seed"):  # albumentations keeps its own generators
            transform.set_random_seed(seed)
        with seeded_rngs(seed):
            return self.dataset[index]


class ResumableSampler(DistributedSampler):
    """A shuffling DistributedSampler that yields `(index, sample seed)` and can start mid-epoch.

    Being a DistributedSampler, Lightning leaves it in place under DDP instead of wrapping it.
    `start_at(epoch, samples)` makes the next pass skip the samples this process already used.
    """

    def __init__(self, dataset: Dataset, seed: int, num_replicas: int = 1, rank: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self._skip = 0

    def start_at(self, epoch: int, samples: int) -> None:
        self.set_epoch(epoch)
        self._skip = samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        skip, self._skip = self._skip, 0
        for index in itertools.islice(super().__iter__(), skip, None):
            yield index, sample_seed(self.seed, self.epoch, index)


def resume_position(trainer: L.Trainer) -> tuple[int, int]:
    """The epoch Lightning trains next and how many of its batches are already done.

    Read from the loop progress restored from a checkpoint; an epoch counts as unfinished while
    its `started` count is ahead of its `processed` count.
    """
    epochs = trainer.fit_loop.epoch_progress.current
    batches = trainer.fit_loop.epoch_loop.batch_progress.current
    return epochs.processed, batches.processed if epochs.started > epochs.processed else 0


def restart_data_at(trainer: L.Trainer, epoch: int, batches: int) -> None:
    """Restart the training iterator at `batches` into `epoch`.

    Lightning builds the iterator, and fetches its first batch, before it restores the loops (the
    scheduler's `estimated_stepping_batches` sets up the data early), so without this a resumed
    run would start the interrupted epoch from its first batch, in epoch 0's order.
    """
    loader = trainer.train_dataloader
    sampler = getattr(loader, "sampler", None)
    if not isinstance(sampler, ResumableSampler):
        return
    sampler.start_at(epoch, batches * loader.batch_size)
    iter(trainer.fit_loop._data_fetcher)  # what Lightning itself calls to start an epoch


def resumable_training_data(dataset: Dataset, trainer: L.Trainer | None) -> tuple[SeededSamples, ResumableSampler]:
    """The training dataset and its sampler, sharded over the trainer's processes.

    The seed is the one `seed_everything` set, which Lightning's own distributed sampler uses too.
    """
    world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
    sampler = ResumableSampler(dataset, int(os.environ.get("PL_GLOBAL_SEED", 0)), world, rank)
    return SeededSamples(dataset), sampler
