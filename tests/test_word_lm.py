"""The word language model for pretraining (rnnlab.pretraining): the reviews' stream, the two-way chunks, the
adaptive softmax's distribution, the state carried across chunks in both directions, learning below the
unigram entropy, and a run killed mid-epoch that resumes to the uninterrupted run's weights bit for bit."""

from __future__ import annotations

import re

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from rnnlab.errors import ConfigError, RnnlabError
from rnnlab.models.truncated_bptt import CARRIED_KEY, bptt_rows
from rnnlab.pretraining.stream import ReviewStreamData, TwoWayChunks, review_stream
from rnnlab.pretraining.transfer import load_language_model
from rnnlab.pretraining.word_lm import WordLanguageModel
from rnnlab.training import build_callbacks, build_trainer

VOCAB = 30  # ids 0 (<pad>), 1 (<oov>), 2..29; the end-of-review id is 30
CUTOFFS = (8, 20)
NO_TRAINER = pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")


def encoder(cell: str = "lstm", bidirectional: bool = False, **sizes) -> dict:
    settings = {"hidden_size": 16, "embedding_dim": 8, "num_layers": 1, "embedding_dropout": 0.0, **sizes}
    return {"cell": cell, "bidirectional": bidirectional, "dropout": 0.1, "pooling": "max", **settings}


def markov_reviews(reviews: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(flat ids, offsets) of reviews of 4-15 words drawn from a chain where each word has two successors."""
    rng = np.random.default_rng(seed)
    successors = np.random.default_rng(99).integers(1, VOCAB, size=(VOCAB, 2))
    lengths = rng.integers(4, 16, size=reviews)
    flat = []
    for length in lengths:
        word = int(rng.integers(1, VOCAB))
        for _ in range(length):
            flat.append(word)
            word = int(successors[word, rng.integers(2)])
    return np.array(flat, np.int32), np.concatenate([[0], np.cumsum(lengths)])


def test_review_stream_ends_every_review_and_shuffles_by_seed():
    flat, offsets = np.array([5, 1, 7, 9, 2, 3]), np.array([0, 3, 3, 6])  # the second review is empty
    assert review_stream(flat, offsets, VOCAB).tolist() == [5, 1, 7, 30, 30, 9, 2, 3, 30]
    flat, offsets = markov_reviews(50, seed=0)
    shuffled = review_stream(flat, offsets, VOCAB, seed=3)
    assert shuffled.dtype == np.int32 and np.array_equal(
        shuffled, review_stream(flat, offsets, VOCAB, seed=3)
    )
    assert not np.array_equal(shuffled, review_stream(flat, offsets, VOCAB))
    assert sorted(shuffled.tolist()) == sorted(review_stream(flat, offsets, VOCAB).tolist())
    assert np.count_nonzero(shuffled == VOCAB) == 50 and 0 not in shuffled
    for bad in (0, VOCAB, -1):
        with pytest.raises(RnnlabError, match=f"token id {bad} .*ids 1 to {VOCAB - 1} \\(no padding\\)"):
            review_stream(np.array([4, bad]), np.array([0, 2]), VOCAB)


def test_reverse_chunks_read_the_reversed_stream_in_order():
    stream = np.arange(1, 200)
    chunks = TwoWayChunks(stream, batch_size=3, chunk_len=7)
    assert len(chunks) == len(chunks.forward) == len(chunks.backward)
    batches = [chunks[i] for i in range(len(chunks))]
    rows = bptt_rows(np.ascontiguousarray(stream[::-1]), 3)
    assert torch.equal(torch.cat([b["reverse_inputs"] for b in batches], 1), rows[:, :-1])
    assert torch.equal(torch.cat([b["reverse_targets"] for b in batches], 1), rows[:, 1:])
    assert torch.equal(
        batches[0]["reverse_targets"], batches[0]["reverse_inputs"] - 1
    )  # the stream backwards
    data = ReviewStreamData(stream, stream[:40], batch_size=3, chunk_len=7, reverse=True)
    assert set(next(iter(data.train_dataloader()))) == {
        "inputs",
        "targets",
        "reverse_inputs",
        "reverse_targets",
    }
    with pytest.raises(ConfigError, match="val split has 20 tokens, too few .* = 24. Lower batch_size"):
        ReviewStreamData(stream, stream[:20], batch_size=3, chunk_len=7)


@pytest.mark.parametrize("cutoffs", [CUTOFFS, ()])
def test_log_probs_are_a_distribution_over_the_vocabulary_and_the_end_id(cutoffs):
    torch.manual_seed(0)
    lm = WordLanguageModel(VOCAB, encoder(), cutoffs=cutoffs).eval()
    hidden = torch.randn(12, 16) * 3
    log_probs = lm.log_probs(hidden)
    assert log_probs.shape == (12, VOCAB + 1)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(12))
    targets = torch.arange(12) * 2 + 7  # every cluster, the end id (29 + 1) among them
    targets[-1] = lm.end_id
    picked = lm.target_log_probs(hidden.view(3, 4, 16), targets.view(3, 4)).flatten()
    torch.testing.assert_close(picked, log_probs.gather(1, targets[:, None]).squeeze(1))


@pytest.mark.parametrize("cutoffs", [(0, 10), (10, 10), (20, 8), (10, VOCAB + 1)])
def test_cutoffs_outside_the_vocabulary_or_unordered_are_refused(cutoffs):
    with pytest.raises(
        ConfigError,
        match=re.escape(
            f"cutoffs={list(cutoffs)} is not allowed; allowed: increasing ids between 1 and {VOCAB} "
        ),
    ):
        WordLanguageModel(VOCAB, encoder(), cutoffs=cutoffs)
    with pytest.raises(
        ConfigError, match="last cluster a projection of hidden_size 16 // 2.0\\*\\*5 = 0 units"
    ):
        WordLanguageModel(VOCAB, encoder(), cutoffs=(2, 4, 8, 16, 20), div_value=2.0)
    WordLanguageModel(VOCAB, encoder(), cutoffs=(2, 4, 8, 16), div_value=2.0)  # 16 // 2**4 = 1 unit


@NO_TRAINER
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_carrying_both_directions_state_over_chunks_equals_reading_whole_rows(cell):
    torch.manual_seed(0)
    lm = WordLanguageModel(VOCAB, encoder(cell, bidirectional=True, num_layers=2), cutoffs=CUTOFFS).eval()
    stream = review_stream(*markov_reviews(40, seed=1), VOCAB)
    data = ReviewStreamData(stream, stream, batch_size=4, chunk_len=9, reverse=True)
    with torch.no_grad():
        lm.on_validation_epoch_start()
        losses = [(lm._step(b, "val"), b["targets"].numel()) for b in data.val_dataloader()]
        chunked = sum(loss * n for loss, n in losses) / sum(n for _, n in losses)
        whole = []
        for direction, ids in ((lm.encoder, stream), (lm.backward_encoder, stream[::-1])):
            rows = bptt_rows(np.ascontiguousarray(ids), 4)
            hidden, _ = lm.run(direction, rows[:, :-1], None)
            whole.append(-lm.target_log_probs(hidden, rows[:, 1:]).mean())
    assert len(losses) > 5 and len(lm.carried["val"]) == 4  # two layers per direction
    torch.testing.assert_close(chunked, torch.stack(whole).mean())


def fit(model, data, folder=None, max_epochs=1, resume=False, kill_at=None) -> L.Trainer:
    """Lightning fit on the CPU; with `folder`: the training stage's callbacks (rnnlab.training: last.ckpt
    every 4 steps and at epoch ends, exact resume, diagnostics) and a CSV logger."""
    callbacks, logger = [], False
    if folder is not None:
        callbacks = build_callbacks(folder, "val/loss", "min", 0, folder / "diagnostics", 4)
        logger = CSVLogger(folder, name="log")
    if kill_at is not None:
        callbacks.append(KillAt(kill_at))
    settings = {"max_epochs": max_epochs, "accelerator": "cpu", "enable_progress_bar": False}
    trainer = build_trainer(
        {**settings, "enable_checkpointing": folder is not None, "enable_model_summary": False},
        callbacks,
        logger,
    )
    trainer.fit(model, data, ckpt_path=folder / "last.ckpt" if resume else None)
    return trainer


class Killed(Exception):
    pass


class KillAt(L.Callback):
    """Ends the process's training abruptly after optimizer step `step` (before any checkpoint of it)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            raise Killed(f"killed after step {self.step}")


def test_the_loss_falls_well_below_the_unigram_entropy():
    train = review_stream(*markov_reviews(600, seed=1), VOCAB, seed=0)
    val = review_stream(*markov_reviews(80, seed=2), VOCAB)
    counts = np.bincount(train, minlength=VOCAB + 1) / len(train)
    unigram = float(-(counts[counts > 0] * np.log(counts[counts > 0])).sum())
    L.seed_everything(0)
    lm = WordLanguageModel(VOCAB, encoder("gru", hidden_size=32), cutoffs=CUTOFFS, lr=1e-2, scheduler="none")
    trainer = fit(lm, ReviewStreamData(train, val, batch_size=8, chunk_len=16), max_epochs=3)
    val_loss = float(trainer.callback_metrics["val/loss"])
    print(f"unigram entropy {unigram:.3f} nats, validation loss after 3 epochs {val_loss:.3f}")
    assert unigram > 3.0 and val_loss < 0.6 * unigram  # two successors per word: ~0.7 nats + boundaries


def test_pretraining_killed_mid_epoch_resumes_to_the_uninterrupted_weights(tmp_path):
    """A BiLSTM (two carried (h, c) states), with dropout: 13 steps per epoch, last.ckpt at step 4, killed
    after step 6, resumed; 2 epochs."""
    train = review_stream(*markov_reviews(40, seed=1), VOCAB, seed=0)
    val = review_stream(*markov_reviews(10, seed=2), VOCAB)
    settings = encoder("lstm", bidirectional=True, embedding_dropout=0.2)

    def run(folder, **kwargs):
        L.seed_everything(0)
        lm = WordLanguageModel(VOCAB, settings, cutoffs=CUTOFFS, head_dropout=0.2)
        data = ReviewStreamData(train, val, batch_size=4, chunk_len=8, reverse=True)
        return lm, fit(lm, data, folder, max_epochs=2, **kwargs)

    whole, whole_trainer = run(tmp_path / "whole")
    assert whole_trainer.num_training_batches == 13
    with pytest.raises(Killed):
        run(tmp_path / "killed", kill_at=6)
    saved = torch.load(tmp_path / "killed" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] == 4 and len(saved[CARRIED_KEY]) == 2  # the two directions' states
    resumed, resumed_trainer = run(tmp_path / "killed", resume=True)
    assert resumed_trainer.global_step == whole_trainer.global_step == 26
    for name, tensor in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], tensor), name
    for key in ("train/loss", "train/loss_backward", "val/loss"):
        assert torch.equal(resumed_trainer.callback_metrics[key], whole_trainer.callback_metrics[key]), key
    loaded = load_language_model(tmp_path / "killed" / "last.ckpt")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in whole.state_dict().items())
