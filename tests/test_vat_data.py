"""The unlabelled texts of virtual adversarial training: the encode stage writes them (the mini archive's 200
`train/unsup` reviews, no test review among them; no rows for a source without), the datamodule pairs every
labelled training batch with an unlabelled one (cycling, seeded, resumable); vat without them is refused."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pytest
import torch
from lightning.fabric.utilities.data import _set_sampler_epoch
from lightning.pytorch.utilities.combined_loader import CombinedLoader
from test_pretrain import composed, encoded_project, stage

from rnnlab.callbacks import EpochThroughput
from rnnlab.data.encode import pad_and_truncate
from rnnlab.data.sampling import CyclingRandomSampler
from rnnlab.data.store import (
    NO_LABEL,
    UNLABELLED,
    EncodedSplit,
    ragged_ids,
    read_split_table,
    write_split_table,
)
from rnnlab.errors import ConfigError
from rnnlab.io import read_json
from rnnlab.tasks.classification.sequence_data import SequenceDataModule
from synthetic import UNLABELLED_ROWS


@pytest.fixture(scope="module")
def mini(tmp_path_factory, mini_archive):
    """The mini archive downloaded, prepared and encoded with the smoke settings: (folder, overrides)."""
    work = tmp_path_factory.mktemp("vat_data")
    return work, encoded_project(work, mini_archive)


def test_encode_writes_the_unlabelled_reviews_and_no_test_review(mini):
    work, _ = mini
    raw, prepared, encoded = (work / "data" / kind / "imdb" for kind in ("raw", "prepared", "encoded"))
    unsup = read_split_table(prepared, UNLABELLED)
    ids = unsup["review_id"].to_pylist()
    assert ids == read_split_table(raw, UNLABELLED)["review_id"].to_pylist() and len(ids) == 200
    assert all(review_id.startswith("unsup/") for review_id in ids)
    labelled = {
        r
        for split in ("train", "val", "test")
        for r in read_split_table(prepared, split)["review_id"].to_pylist()
    }
    assert not set(ids) & labelled
    rows, train = EncodedSplit.load(encoded / UNLABELLED), EncodedSplit.load(encoded / "train")
    assert len(rows) == 200 and rows.ids.shape[1] == train.ids.shape[1] and (rows.labels == NO_LABEL).all()
    flat, offsets = ragged_ids(unsup)  # padded and truncated as the training texts
    settings = {
        k: v for k, v in read_json(encoded / "meta.json").items() if k in ("max_len", "padding", "truncating")
    }
    ids, lengths = pad_and_truncate(flat, offsets, **settings)
    assert np.array_equal(rows.ids, ids) and np.array_equal(rows.lengths, lengths)
    assert rows.token_counts.tolist() == np.diff(offsets).tolist()


def test_vat_without_unlabelled_rows_is_refused(mini, tmp_path):
    work, overrides = mini
    prepared, encoded = tmp_path / "prepared", tmp_path / "encoded"
    shutil.copytree(work / "data/prepared/imdb", prepared)
    paths = {"prepared": prepared, "encoded": encoded, "reports": tmp_path / "reports"}
    empty = pa.table({"ids": pa.array([], pa.list_(pa.int32())), "review_id": pa.array([], pa.string())})
    write_split_table(prepared, UNLABELLED, empty)
    stage("encode")(composed([*overrides, *(f"paths.{k}_dir={v}" for k, v in paths.items())]))
    assert len(EncodedSplit.load(encoded / UNLABELLED)) == 0
    assert len(SequenceDataModule(encoded).train_dataloader()) > 0  # none and at do not need them
    with pytest.raises(ConfigError, match=r"train.adversarial=vat .*unsup has no rows"):
        SequenceDataModule(encoded, unlabelled=True).train_dataloader()


def test_cycling_sampler_repeats_whole_shuffled_passes_by_seed_and_epoch():
    sampler = CyclingRandomSampler(5, 12, seed=3)
    first = list(sampler)
    assert len(first) == len(sampler) == 12
    assert sorted(first[:5]) == sorted(first[5:10]) == list(range(5)) and len(set(first[10:])) == 2
    assert list(CyclingRandomSampler(5, 12, seed=3)) == first
    sampler.set_epoch(1)
    assert list(sampler) != first


def epoch(loader: CombinedLoader, number: int) -> list[tuple[list[int], list[int]]]:
    """(labelled, unlabelled) token ids of an epoch's batches, the epoch set as Lightning's fit loop does."""
    for part in loader.flattened:
        _set_sampler_epoch(part, number)
    labelled, unlabelled = (loader.iterables[key] for key in ("labelled", "unlabelled"))
    return [(a["ids"].tolist(), b["ids"].tolist()) for a, b in zip(labelled, unlabelled, strict=True)]


def test_each_labelled_batch_gets_an_unlabelled_one_and_a_resumed_loader_continues_both(data):
    encoded, _ = data
    loader = SequenceDataModule(encoded, batch_size=8, seed=5, unlabelled=True).train_dataloader()
    assert isinstance(loader, CombinedLoader)
    assert len(loader.iterables["labelled"]) == len(loader.iterables["unlabelled"]) == 25  # 200 rows / 8
    batches = epoch(loader, 1)
    unlabelled = loader.iterables["unlabelled"]
    assert {len(b) for _, b in batches} == {8}
    drawn = [row for _, b in batches for row in b]
    assert len({tuple(t for t in row if t) for row in drawn}) == UNLABELLED_ROWS  # 200 draws, all 40 rows
    widths = [len(b[0]) for _, b in batches]  # trimmed to each batch's longest text
    assert widths == [int(max(batch["lengths"])) for batch in unlabelled]
    assert epoch(loader, 2) != batches
    resumed = SequenceDataModule(encoded, batch_size=8, seed=5, unlabelled=True)
    resumed.load_state_dict({"epoch": 1, "batches": 9})
    assert epoch(resumed.train_dataloader(), 1) == batches[9:]


def test_throughput_counts_the_labelled_rows_of_a_paired_batch():
    meter = EpochThroughput()
    meter.on_train_epoch_start(None, None)
    rows = {"ids": torch.zeros(8, 3), "lengths": torch.ones(8)}
    meter.on_train_batch_end(
        None, None, None, {"labelled": rows, "unlabelled": {"ids": torch.zeros(5, 2)}}, 0
    )
    meter.on_train_batch_end(None, None, None, rows, 1)
    assert meter.sequences == 16
