"""Bucketed batching and the DataModule over encoded arrays."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from rnnlab.data.sampling import BucketBatchSampler
from rnnlab.data.store import EncodedSplit
from rnnlab.io import write_json
from rnnlab.tasks.classification.sequence_data import SequenceDataModule


def test_bucket_batches_cover_every_index_once_with_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 500, size=1000)
    sampler = BucketBatchSampler(range(1000), batch_size=32, drop_last=False, lengths=lengths, pool_factor=10)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 32
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    assert spread < np.ptp(lengths) / 5  # far tighter than random batches


def test_bucket_order_depends_on_seed_and_epoch():
    lengths = np.arange(200)
    sampler = BucketBatchSampler(
        range(200), batch_size=8, drop_last=True, lengths=lengths, pool_factor=25, seed=1
    )
    first = list(sampler)
    assert first == list(sampler)
    sampler.set_epoch(1)
    assert first != list(sampler)
    assert all(len(b) == 8 for b in first)


def test_bucket_sampler_shards_under_a_distributed_sampler():
    lengths = np.arange(100)
    shards = [
        BucketBatchSampler(
            DistributedSampler(range(100), num_replicas=2, rank=r, shuffle=False), 10, False, lengths
        )
        for r in (0, 1)
    ]
    seen = [sorted(i for b in s for i in b) for s in shards]
    assert not set(seen[0]) & set(seen[1]) and len(seen[0]) + len(seen[1]) == 100


def make_encoded(folder, padding):
    ids = np.array([[5, 6, 7, 0], [8, 9, 0, 0], [4, 0, 0, 0]], np.int32)
    if padding == "pre":
        ids = np.array([[0, 5, 6, 7], [0, 0, 8, 9], [0, 0, 0, 4]], np.int32)
    for split in ("train", "val", "test"):
        EncodedSplit(
            ids, np.array([3, 2, 1], np.int32), np.array([3, 2, 1], np.int32), np.array([1, 0, 1], np.int32)
        ).save(folder / split)
    write_json(folder / "meta.json", {"vocab_size": 10, "num_classes": 2, "padding": padding, "max_len": 4})


def test_batches_are_trimmed_and_post_padded_whatever_the_stored_padding(tmp_path):
    for padding, expected in (("post", [[8, 9], [4, 0]]), ("pre", [[8, 9], [4, 0]])):
        folder = tmp_path / padding
        make_encoded(folder, padding)
        dm = SequenceDataModule(folder, batch_size=2, bucket=False)
        loader = dm.loader("test", shuffle=False)
        batch = loader.collate_fn(loader.dataset.__getitems__([1, 2]))
        assert batch["ids"].tolist() == expected
        assert batch["lengths"].tolist() == [2, 1] and batch["labels"].dtype == torch.int64
        assert dm.vocab_size == 10 and dm.num_classes == 2


def test_datamodule_memory_maps_and_serves_all_rows(tmp_path):
    make_encoded(tmp_path, "post")
    dm = SequenceDataModule(tmp_path, batch_size=2, bucket=True)
    dm.setup()
    assert isinstance(dm.splits["train"].ids, np.memmap)
    rows = sum(len(b["labels"]) for b in dm.train_dataloader())
    assert rows == 3
