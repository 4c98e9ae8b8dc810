"""Initialising a classifier from a pretrained word language model (rnnlab.pretraining.transfer): for each
cell of conf/model, the copied tensors equal the language model's bit for bit and nothing else changes; a
mismatched language model is refused with what differs, before anything is copied."""

from __future__ import annotations

import re

import pytest
import torch
from omegaconf import OmegaConf

from rnnlab.errors import ConfigError
from rnnlab.models.build import encoder_args
from rnnlab.pretraining.transfer import init_from_language_model
from rnnlab.pretraining.word_lm import WordLanguageModel
from rnnlab.tasks.classification.builder import build_classifier
from synthetic import VOCAB_SIZE
from test_config import compose_cfg

CUTOFFS = (8, 20)  # for the synthetic vocabulary's 30 ids + the end-of-review id


def model_cfg(project_root, cell: str, *overrides: str) -> dict:
    """conf/model/<cell>.yaml with two layers (the second is not copied) and `overrides`."""
    cfg = compose_cfg(project_root, [f"model={cell}", "model.num_layers=2", *overrides])
    return OmegaConf.to_container(cfg.model, resolve=True)


def classifier(cfg: dict, data, seed: int = 1):
    torch.manual_seed(seed)
    model, _ = build_classifier(cfg, {}, 2, data[1] / "vocab.json")
    return model


def language_model(cfg: dict, vocab_size: int = VOCAB_SIZE, seed: int = 2) -> WordLanguageModel:
    """A language model whose every weight moved away from its initialisation (zero biases among them), as
    training moves them; the padding row stays zero, as it does in training (it never is an input)."""
    torch.manual_seed(seed)
    lm = WordLanguageModel(vocab_size, encoder_args(cfg), cutoffs=CUTOFFS)
    with torch.no_grad():
        for param in lm.parameters():
            param.add_(torch.randn_like(param))
        lm.embedding.weight[0] = 0
    return lm


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "bilstm"])
def test_transfer_copies_the_embedding_and_first_layer_bit_for_bit(project_root, data, cell):
    cfg = model_cfg(project_root, cell)
    model, lm = classifier(cfg, data), language_model(cfg)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    copied = init_from_language_model(model, lm)
    directions = ["forward"] + (["backward"] if cell == "bilstm" else [])
    weights = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert copied == ["encoder.embedding.weight"] + [
        f"encoder.layers.0.{d}_rnn.{w}" for d in directions for w in weights
    ]
    after = model.state_dict()
    assert torch.equal(after["encoder.embedding.weight"], lm.embedding.weight[:VOCAB_SIZE])
    assert not after["encoder.embedding.weight"][0].any()  # padding stays a zero row
    sources = {"forward": lm.encoder, "backward": lm.backward_encoder}
    for d in directions:
        for w in weights:
            source = sources[d].state_dict()[f"layers.0.forward_rnn.{w}"]
            assert torch.equal(after[f"encoder.layers.0.{d}_rnn.{w}"], source)
            assert not torch.equal(before[f"encoder.layers.0.{d}_rnn.{w}"], source)  # it did change
    untouched = [name for name in before if name not in copied]
    assert any(name.startswith("encoder.layers.1.") for name in untouched)
    assert any(name.startswith("head.") for name in untouched)
    for name in untouched:
        assert torch.equal(after[name], before[name]), name


def test_transfer_into_an_adversarially_trained_classifier(project_root, data):
    """The normalised embedding (train.adversarial) shares the copied table."""
    cfg = model_cfg(project_root, "gru")
    adversarial = {"adversarial": "vat", "adversarial_epsilon": 5.0, "adversarial_xi": 0.1}
    model, _ = build_classifier(cfg, {}, 2, data[1] / "vocab.json", adversarial=adversarial)
    lm = language_model(cfg)
    assert "encoder.embedding.weight" in init_from_language_model(model, lm)
    assert torch.equal(model.encoder.embedding.weight, lm.embedding.weight[:VOCAB_SIZE])


@pytest.mark.parametrize(
    ("lm_overrides", "vocab_size", "named"),
    [
        ([], VOCAB_SIZE + 5, f"vocab_size {VOCAB_SIZE} (classifier) vs {VOCAB_SIZE + 5} (language model)"),
        (["model.cell=gru"], VOCAB_SIZE, "cell 'lstm' (classifier) vs 'gru' (language model)"),
        (["model.hidden_size=64"], VOCAB_SIZE, "hidden_size 128 (classifier) vs 64 (language model)"),
        (["model.embedding_dim=32"], VOCAB_SIZE, "embedding_dim 128 (classifier) vs 32 (language model)"),
        (["model.bidirectional=true"], VOCAB_SIZE, "bidirectional False (classifier) vs True"),
    ],
)
def test_a_mismatched_language_model_is_refused_before_copying(
    project_root, data, lm_overrides, vocab_size, named
):
    model = classifier(model_cfg(project_root, "lstm"), data)
    lm = language_model(model_cfg(project_root, "lstm", *lm_overrides), vocab_size)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with pytest.raises(ConfigError, match=f"model.init_from=lm: .*{re.escape(named)}"):
        init_from_language_model(model, lm)
    assert all(torch.equal(model.state_dict()[name], tensor) for name, tensor in before.items())


def test_every_mismatch_is_named_at_once(project_root, data):
    model = classifier(model_cfg(project_root, "bilstm"), data)
    lm = language_model(model_cfg(project_root, "gru", "model.hidden_size=32"), VOCAB_SIZE + 1)
    with pytest.raises(ConfigError) as refused:
        init_from_language_model(model, lm)
    for key in ("vocab_size", "cell", "hidden_size", "bidirectional"):
        assert f"{key} " in str(refused.value)
    assert "embedding_dim" not in str(refused.value)
