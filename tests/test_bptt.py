"""Truncated-BPTT batches: layout, continuity across batches, counts, and the data module."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnlab.errors import ConfigError, LayoutError
from rnnlab.models.truncated_bptt import BpttChunks, bptt_rows, num_chunks
from rnnlab.tasks.charlm.bptt import CharLMDataModule
from rnnlab.tasks.charlm.corpus import prepare_corpus
from synthetic import TEXT


@pytest.mark.parametrize(
    ("n", "batch_size", "chunk_len"), [(1000, 4, 10), (1001, 4, 10), (997, 3, 7), (64, 1, 63)]
)
def test_rows_continue_across_batches_and_targets_shift_by_one(n, batch_size, chunk_len):
    ids = np.arange(n)  # each id is its position in the stream
    chunks = BpttChunks(ids, batch_size, chunk_len)
    width = n // batch_size
    assert len(chunks) == math.ceil((width - 1) / chunk_len) == num_chunks(n, batch_size, chunk_len)
    batches = [chunks[i] for i in range(len(chunks))]
    for i, batch in enumerate(batches):
        start = i * chunk_len
        columns = np.arange(start, min(start + chunk_len, width - 1))
        expected = np.arange(batch_size)[:, None] * width + columns[None, :]
        assert batch["inputs"].dtype == batch["targets"].dtype == torch.int64
        assert np.array_equal(batch["inputs"].numpy(), expected)
        assert np.array_equal(batch["targets"].numpy(), expected + 1)
    for before, after in zip(batches, batches[1:], strict=False):
        assert torch.equal(after["inputs"][:, 0], before["inputs"][:, -1] + 1)  # row b goes on where it ended
        assert torch.equal(after["inputs"][:, 0], before["targets"][:, -1])
    inputs = torch.cat([b["inputs"] for b in batches], dim=1)
    targets = torch.cat([b["targets"] for b in batches], dim=1)
    rows = bptt_rows(ids, batch_size)
    assert torch.equal(inputs, rows[:, :-1]) and torch.equal(targets, rows[:, 1:])  # every position once
    assert rows.shape == (batch_size, width) and rows[-1, -1] == batch_size * width - 1  # remainder dropped
    last = (width - 1) - (len(chunks) - 1) * chunk_len
    assert batches[-1]["inputs"].shape == (batch_size, last)  # the shorter last chunk is kept
    with pytest.raises(IndexError):
        chunks[len(chunks)]


def test_carrying_the_state_over_chunks_equals_running_whole_rows():
    torch.manual_seed(0)
    rnn, embed = torch.nn.GRU(8, 16, batch_first=True), torch.nn.Embedding(50, 8)
    ids = torch.randint(0, 50, (403,)).numpy()
    chunks = BpttChunks(ids, batch_size=4, chunk_len=9)
    with torch.no_grad():
        whole, _ = rnn(embed(bptt_rows(ids, 4)[:, :-1]))
        state, pieces = None, []
        for i in range(len(chunks)):
            out, state = rnn(embed(chunks[i]["inputs"]), state)
            pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole)


@pytest.fixture
def prepared_dir(tmp_path):
    prepare_corpus(TEXT, val_fraction=0.2).save(tmp_path / "prepared")
    return tmp_path / "prepared"


@pytest.mark.parametrize("num_workers", [0, 1])
def test_datamodule_yields_the_split_in_order(prepared_dir, num_workers):
    n_train = int(len(TEXT) * 0.8)
    data = CharLMDataModule(prepared_dir, batch_size=5, chunk_len=16, num_workers=num_workers)
    assert data.vocab_size == len(set(TEXT)) == len(data.vocab)
    for split, text in (("train", TEXT[:n_train]), ("val", TEXT[n_train:])):
        loader = data.train_dataloader() if split == "train" else data.val_dataloader()
        epochs = [list(loader) for _ in range(2)]
        assert len(epochs[0]) == num_chunks(len(text), 5, 16)
        for a, b in zip(*epochs, strict=True):  # no shuffling: every epoch is the same sequence of batches
            assert torch.equal(a["inputs"], b["inputs"]) and torch.equal(a["targets"], b["targets"])
        width = len(text) // 5
        inputs = torch.cat([batch["inputs"] for batch in epochs[0]], dim=1)
        targets = torch.cat([batch["targets"] for batch in epochs[0]], dim=1)
        for row in range(5):
            assert data.vocab.decode(inputs[row]) == text[row * width : (row + 1) * width - 1]
            assert data.vocab.decode(targets[row]) == text[row * width + 1 : (row + 1) * width]


def test_resumed_loader_starts_at_the_checkpoint_batch_and_later_ones_at_the_first(prepared_dir):
    data = CharLMDataModule(prepared_dir, batch_size=5, chunk_len=16)
    whole = [batch["inputs"] for batch in data.train_dataloader()]
    data.load_state_dict({"epoch": 3, "batches": 4})  # what a checkpoint saved after batch 4 holds
    resumed = [batch["inputs"] for batch in data.train_dataloader()]
    assert len(resumed) == len(whole) - 4
    assert all(torch.equal(a, b) for a, b in zip(resumed, whole[4:], strict=True))
    assert len(list(data.train_dataloader())) == len(whole)


def test_datamodule_refuses_splits_too_short_and_bad_sizes(prepared_dir, tmp_path):
    n_val = len(TEXT) - int(len(TEXT) * 0.8)
    with pytest.raises(ConfigError, match=f"val split has {n_val} characters.*= {40 * 31}"):
        CharLMDataModule(prepared_dir, batch_size=40, chunk_len=30)
    CharLMDataModule(prepared_dir, batch_size=n_val // 31, chunk_len=30)  # exactly enough rows for one chunk
    for kwargs, key in (
        ({"batch_size": 0}, "batch_size is 0"),
        ({"chunk_len": 2.5}, "chunk_len is 2.5"),
        ({"num_workers": -1}, "num_workers is -1"),
    ):
        with pytest.raises(ConfigError, match=f"data.loader.{key}; allowed: an integer"):
            CharLMDataModule(prepared_dir, **{"batch_size": 2, "chunk_len": 4, **kwargs})
    with pytest.raises(LayoutError, match="run the prepare stage"):
        CharLMDataModule(tmp_path / "missing", batch_size=2, chunk_len=4)
