"""Adversarial and virtual adversarial training (rnnlab.tasks.classification.adversarial): `none` trains bit
for bit as the plain classifier did; the perturbation has L2 norm ε per example and is zero at padded steps;
the normalised embeddings have frequency-weighted mean 0 and variance 1; at/vat runs are seeded, log their
term and keep the frequencies in the checkpoint; the vat term covers the labelled and the unlabelled rows
joined."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from rnnlab.errors import ConfigError
from rnnlab.tasks.classification.adversarial import (
    LOSS_NAMES,
    NormalisedEmbedding,
    at_perturbation,
    scaled,
    vat_perturbation,
)
from rnnlab.tasks.classification.builder import build_classifier
from rnnlab.tasks.classification.classifier import SequenceClassifier
from rnnlab.tasks.classification.sequence_data import SequenceDataModule

VOCAB = 30
ENCODER = {
    "cell": "lstm",
    "bidirectional": True,
    "hidden_size": 6,
    "embedding_dim": 5,
    "embedding_dropout": 0.2,
    "dropout": 0.2,
    "num_layers": 2,
}
COUNTS = [0, 0, *range(100, 100 - (VOCAB - 2), -1)]  # <pad> and <oov> count 0, as in a Vocabulary
NO_TRAINER = pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")


def batch(seed: int = 0, rows: int = 6, steps: int = 9) -> dict[str, torch.Tensor]:
    """Post-padded token ids with lengths 1..steps (row 0 full), random labels."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, steps + 1, (rows,), generator=g)
    lengths[0] = steps
    ids = torch.randint(2, VOCAB, (rows, steps), generator=g)
    ids[torch.arange(steps).unsqueeze(0) >= lengths.unsqueeze(1)] = 0
    return {"ids": ids, "lengths": lengths, "labels": torch.randint(0, 2, (rows,), generator=g)}


def classifier(mode: str = "none") -> SequenceClassifier:
    torch.manual_seed(0)
    counts = None if mode == "none" else COUNTS
    return SequenceClassifier(VOCAB, 2, ENCODER, head_dropout=0.3, adversarial=mode, word_counts=counts)


def trained(model: SequenceClassifier, step) -> dict[str, torch.Tensor]:
    """The weights after five AdamW steps of `step(model, batch, index)`, from a fixed global seed."""
    torch.manual_seed(1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    for index in range(5):
        optimizer.zero_grad()
        step(model, batch(index), index).backward()
        optimizer.step()
    return {name: p.detach().clone() for name, p in model.state_dict().items()}


@NO_TRAINER
def test_none_trains_bit_for_bit_as_the_plain_classifier():
    def plain(model, b, _):  # the classifier's training step before adversarial training existed
        pooled, _ = model.encoder(b["ids"], b["lengths"])
        return F.cross_entropy(model.head(pooled), b["labels"])

    torch.manual_seed(0)
    absent = SequenceClassifier(VOCAB, 2, ENCODER, head_dropout=0.3)  # the option absent
    reference = trained(absent, plain)
    weights = trained(classifier("none"), lambda m, b, i: m.training_step(b, i))
    assert weights.keys() == reference.keys()
    assert all(torch.equal(weights[k], reference[k]) for k in reference)


def test_normalised_embedding_has_weighted_mean_zero_and_variance_one_and_shares_the_weight():
    plain, model = classifier("none"), classifier("at")
    embedding = model.encoder.embedding
    assert isinstance(embedding, NormalisedEmbedding)
    assert torch.equal(embedding.weight, plain.encoder.embedding.weight)  # no new draws at construction
    assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), model.parameters(), strict=True))
    freqs = torch.tensor(COUNTS, dtype=torch.float) / sum(COUNTS)
    assert torch.equal(embedding.frequencies, freqs)
    table = embedding.normalised_weight()
    mean, var = (freqs.unsqueeze(1) * table).sum(0), (freqs.unsqueeze(1) * table**2).sum(0)
    assert torch.allclose(mean, torch.zeros(5), atol=1e-6) and torch.allclose(var, torch.ones(5), atol=1e-4)
    ids = batch()["ids"]
    assert torch.equal(embedding(ids), table[ids])


@pytest.mark.parametrize("mode", ["at", "vat"])
def test_perturbation_norm_equals_epsilon_and_padded_steps_stay_unperturbed(mode):
    model, b = classifier(mode), batch()
    embedded = model.encoder.embed(b["ids"])
    logits = model.classify(embedded, b["lengths"])
    if mode == "at":
        r = at_perturbation(F.cross_entropy(logits, b["labels"]), embedded, b["lengths"], 2.5)
    else:
        r = vat_perturbation(model.classify, logits, embedded, b["lengths"], 2.5, 0.1)
    assert not r.requires_grad
    norms = torch.linalg.vector_norm(r, dim=(1, 2))
    assert torch.allclose(norms, torch.full_like(norms, 2.5), rtol=1e-5)
    padded = torch.arange(r.size(1)).unsqueeze(0) >= b["lengths"].unsqueeze(1)
    assert padded.any() and (r[padded] == 0).all() and (r[~padded].abs().sum(-1) > 0).all()


def test_scaling_survives_tiny_gradients_and_leaves_zero_directions_zero():
    direction = torch.randn(3, 4, 2) * 1e-30
    direction[2] = 0
    r = scaled(direction, torch.tensor([4, 2, 3]), 5.0)
    assert torch.allclose(torch.linalg.vector_norm(r[:2], dim=(1, 2)), torch.tensor([5.0, 5.0]))
    assert (r[1, 2:] == 0).all() and (r[2] == 0).all()


@NO_TRAINER
def test_at_works_with_frozen_embeddings():
    model = classifier("at")
    model.encoder.embedding.weight.requires_grad_(False)
    loss = model.training_step(batch(), 0)
    loss.backward()
    assert model.encoder.embedding.weight.grad is None and model.head[1].weight.grad.abs().sum() > 0


@NO_TRAINER
def test_vat_term_is_computed_on_the_labelled_and_unlabelled_rows_joined():
    model = classifier("vat")
    rows, classify = [], model.classify

    def spy(embedded, lengths):
        rows.append(len(lengths))
        return classify(embedded, lengths)

    model.classify = spy
    losses = []
    for seed in (1, 2):  # the same labelled batch and random draws, another unlabelled batch
        torch.manual_seed(0)
        losses.append(model.training_step({"labelled": batch(0), "unlabelled": batch(seed, 4, 12)}, 0))
    # clean labelled, clean unlabelled, then the power iteration and the KL term on all 6 + 4 rows
    assert rows == [6, 4, 10, 10] * 2
    assert not torch.equal(*losses)  # the labelled loss is the same: the term differs
    with pytest.raises(ValueError, match="unlabelled"):
        model.training_step(batch(0), 0)


def fit(encoded, mode: str, tmp_path) -> tuple[SequenceClassifier, L.Trainer]:
    L.seed_everything(3)
    dm = SequenceDataModule(encoded, batch_size=16, unlabelled=mode == "vat")
    model = SequenceClassifier(
        dm.vocab_size, dm.num_classes, ENCODER, adversarial=mode, adversarial_epsilon=1.0, word_counts=COUNTS
    )
    trainer = L.Trainer(
        max_epochs=1,
        limit_train_batches=4,
        limit_val_batches=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=dm)
    return model, trainer


@pytest.mark.parametrize("mode", ["at", "vat"])
def test_training_logs_the_term_reproduces_and_checkpoints_the_frequencies(data, tmp_path, mode):
    encoded, _ = data
    model, trainer = fit(encoded, mode, tmp_path)
    again, _ = fit(encoded, mode, tmp_path)
    assert torch.isfinite(trainer.callback_metrics[LOSS_NAMES[mode]])
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True)
    )
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = SequenceClassifier.load_from_checkpoint(tmp_path / "m.ckpt", map_location="cpu").eval()
    b = batch()
    assert torch.equal(loaded.encoder.embedding.frequencies, model.encoder.embedding.frequencies)
    assert torch.equal(loaded(b["ids"], b["lengths"]), model.eval()(b["ids"], b["lengths"]))


def test_build_classifier_normalises_with_the_vocabulary_counts(data):
    _, prepared = data
    model, _ = build_classifier(
        {**ENCODER, "pooling": "last", "init": "orthogonal", "forget_bias": 1.0, "head_dropout": 0.0},
        {},
        2,
        prepared / "vocab.json",
        adversarial={"adversarial": "vat", "adversarial_epsilon": 5.0, "adversarial_xi": 0.1},
    )
    freqs = model.encoder.embedding.frequencies
    assert freqs[:2].tolist() == [0, 0] and freqs[2] > freqs[-1] > 0
    assert torch.isclose(freqs.sum(), torch.tensor(1.0))
    with pytest.raises(ConfigError, match="train.adversarial='fgsm'"):
        SequenceClassifier(VOCAB, 2, ENCODER, adversarial="fgsm")
