"""The recurrent encoder, its pooling, initialisation and parameter bookkeeping (CPU, tiny sizes)."""

from __future__ import annotations

import itertools
import re

import pytest
import torch

from rnnlab.diagnostics.recurrent_weights import encoder_spectra
from rnnlab.errors import ConfigError
from rnnlab.models import choices
from rnnlab.models.cells import CELLS, cell_of
from rnnlab.models.choices import INITS, POOLINGS
from rnnlab.models.encoder import EncoderConfig, RecurrentEncoder, reverse_within_lengths
from rnnlab.models.summary import model_summary, parameter_rows
from rnnlab.tasks.classification.classifier import SequenceClassifier

VOCAB = 23
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
ALL = list(itertools.product(CELLS, (False, True), POOLINGS))
PAIRS = list(itertools.product(CELLS, (False, True)))


def encoder(cell="lstm", bidirectional=False, pooling="last", seed=0, **overrides) -> RecurrentEncoder:
    torch.manual_seed(seed)
    config = dict(
        cell=cell, bidirectional=bidirectional, num_layers=2, hidden_size=6, embedding_dim=5, pooling=pooling
    )
    return RecurrentEncoder(VOCAB, EncoderConfig(**{**config, **overrides}))


def padded(rows: list[list[int]], width: int, fill: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Post-padded ids [B, width] and lengths [B]."""
    ids = torch.full((len(rows), width), fill, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    return ids, torch.tensor([len(r) for r in rows])


# A length-1 sequence, the full-width one and two in between.
ROWS = [[3, 7, 2, 9, 4, 11, 5], [8], [12, 6, 2], [22, 1, 14, 3, 3]]


@pytest.mark.parametrize(("cell", "bidirectional", "pooling"), ALL)
def test_output_shapes(cell, bidirectional, pooling):
    model = encoder(cell, bidirectional, pooling)
    ids, lengths = padded(ROWS, width=9)
    pooled, steps = model(ids, lengths)
    width = 6 * (2 if bidirectional else 1)
    assert model.output_size == width
    assert pooled.shape == (len(ROWS), width)
    assert steps.shape == (len(ROWS), 9, width)
    assert torch.isfinite(pooled).all() and torch.isfinite(steps).all()


@pytest.mark.parametrize(("cell", "bidirectional", "pooling"), ALL)
def test_padding_never_changes_the_outputs(cell, bidirectional, pooling):
    """Same sequences, tight vs. wide padding (zeros, then junk ids): same pooled and per-step outputs."""
    model = encoder(cell, bidirectional, pooling, embedding_dropout=0.3, dropout=0.3).eval()
    tight_ids, lengths = padded(ROWS, width=max(map(len, ROWS)))
    with torch.no_grad():
        tight, tight_steps = model(tight_ids, lengths)
        for fill in (0, 17):
            wide, wide_steps = model(*padded(ROWS, width=12, fill=fill))
            torch.testing.assert_close(wide, tight, atol=1e-6, rtol=0)
            for i, row in enumerate(ROWS):
                real = slice(0, len(row))
                torch.testing.assert_close(wide_steps[i, real], tight_steps[i, real], atol=1e-6, rtol=0)


@pytest.mark.parametrize(("cell", "bidirectional"), PAIRS)
def test_rows_of_a_batch_are_independent_of_each_other(cell, bidirectional):
    """A sequence encoded alone equals the same sequence inside a padded batch (the length-1 one included)."""
    model = encoder(cell, bidirectional, "attention").eval()
    with torch.no_grad():
        batch, _ = model(*padded(ROWS, width=10))
        for i, row in enumerate(ROWS):
            alone, _ = model(*padded([row], width=len(row)))
            torch.testing.assert_close(batch[i], alone[0], atol=1e-6, rtol=0)


def test_last_pooling_takes_the_final_state_of_each_direction():
    model = encoder("gru", True, "last").eval()
    ids, lengths = padded(ROWS, width=8)
    with torch.no_grad():
        pooled, steps = model(ids, lengths)
        layer = model.layers[-1]
        # Recompute the top layer's final states directly, per sequence, without padding.
        below = model.embedding(ids)
        below = model.layers[0](below, lengths)
        for i, row in enumerate(ROWS):
            x = below[i : i + 1, : len(row)]
            _, h_forward = layer.forward_rnn(x)
            _, h_backward = layer.backward_rnn(x.flip(1))
            expected = torch.cat([h_forward[0, 0], h_backward[0, 0]])
            torch.testing.assert_close(pooled[i], expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("cell", "bidirectional"), PAIRS)
def test_parameter_counts_match_the_formulas(cell, bidirectional):
    hidden, embedding_dim, layers = 6, 5, 3
    model = encoder(
        cell, bidirectional, "mean", num_layers=layers, hidden_size=hidden, embedding_dim=embedding_dim
    )
    directions = 2 if bidirectional else 1
    total = 0
    for depth, layer in enumerate(model.layers):
        d = embedding_dim if depth == 0 else hidden * directions
        per_direction = GATES[cell] * hidden * (d + hidden + 2)  # W_ih, W_hh and PyTorch's two bias vectors
        rnns = [layer.forward_rnn] + ([layer.backward_rnn] if bidirectional else [])
        assert (layer.backward_rnn is not None) == bidirectional
        for rnn in rnns:
            assert sum(p.numel() for p in rnn.parameters()) == per_direction
        assert sum(p.numel() for p in layer.parameters()) == directions * per_direction
        total += directions * per_direction
    assert sum(p.numel() for p in model.layers.parameters()) == total
    assert len(model.recurrent_modules()) == layers * directions
    assert model.embedding.weight.numel() == VOCAB * embedding_dim


def test_summary_reports_trainable_and_frozen_parameters():
    torch.manual_seed(0)
    config = {"cell": "lstm", "bidirectional": True, "hidden_size": 4, "embedding_dim": 3}
    model = SequenceClassifier(VOCAB, 2, {**config, "pooling": "attention"})
    model.encoder.embedding.weight.requires_grad_(False)
    frozen = VOCAB * 3
    total = sum(p.numel() for p in model.parameters())
    rows = {row["layer"]: row for row in parameter_rows(model)}
    assert rows["encoder.embedding"] == {
        "layer": "encoder.embedding",
        "type": "Embedding",
        "params": frozen,
        "trainable": 0,
        "frozen": frozen,
    }
    assert rows["encoder"]["frozen"] == frozen
    assert rows["encoder"]["trainable"] == rows["encoder"]["params"] - frozen
    lstm = 4 * 4 * (3 + 4 + 2)
    assert rows["encoder.layers"]["params"] == rows["encoder.layers"]["trainable"] == 2 * lstm
    assert rows["head"]["frozen"] == 0 and rows["head"]["params"] == 2 * 8 + 2
    assert rows["encoder"]["params"] + rows["head"]["params"] == total
    assert all(row["layer"].count(".") <= 2 for row in rows.values())  # max_depth=3
    assert "encoder.layers.0.forward_rnn" not in rows
    assert [row["layer"] for row in parameter_rows(model, max_depth=1)] == ["encoder", "head"]

    text = model_summary(model)
    totals = f"Total params: {total:,}   Trainable: {total - frozen:,}   Frozen: {frozen:,}"
    assert text.splitlines()[-1] == totals
    embedding_line = next(line for line in text.splitlines() if line.split()[0] == "encoder.embedding")
    assert embedding_line.split()[1:] == ["Embedding", f"{frozen:,}", "0", f"{frozen:,}"]

    model.encoder.embedding.weight.requires_grad_(True)
    assert model_summary(model).splitlines()[-1].endswith("Frozen: 0")


@pytest.mark.parametrize(("init", "bidirectional"), list(itertools.product(INITS, (False, True))))
def test_lstm_forget_gate_bias(init, bidirectional):
    hidden = 6
    model = encoder("lstm", bidirectional, init=init, hidden_size=hidden)
    assert len(model.recurrent_modules()) == 2 * (2 if bidirectional else 1)
    for rnn in model.recurrent_modules():
        total = rnn.bias_ih_l0 + rnn.bias_hh_l0
        torch.testing.assert_close(total[hidden : 2 * hidden], torch.ones(hidden), atol=1e-7, rtol=0)
        if init == "orthogonal":  # the other gates start at zero bias
            assert total[:hidden].abs().max() == 0 and total[2 * hidden :].abs().max() == 0
        else:  # PyTorch's uniform init elsewhere
            assert total[2 * hidden :].abs().max() > 0


def test_forget_bias_none_keeps_the_init():
    model = encoder("lstm", init="default", forget_bias=None)
    for rnn in model.recurrent_modules():
        forget = (rnn.bias_ih_l0 + rnn.bias_hh_l0)[6:12]
        assert not torch.allclose(forget, torch.ones(6))
    model = encoder("lstm", init="orthogonal", forget_bias=None)
    for rnn in model.recurrent_modules():
        assert (rnn.bias_ih_l0 + rnn.bias_hh_l0).abs().max() == 0


def test_the_cell_registry_holds_exactly_the_cells_config_validation_allows():
    assert tuple(CELLS) == choices.CELLS  # rnnlab.validation checks model.cell against choices (torch-free)


@pytest.mark.parametrize("name", list(CELLS))
def test_one_cell_registry_builds_the_encoder_and_names_the_gates_of_the_diagnostics(name):
    cell = CELLS[name]
    rnn = cell.module(3, 5)
    assert rnn.weight_hh_l0.shape[0] == rnn.bias_ih_l0.shape[0] == len(cell.gates) * 5 == GATES[name] * 5
    assert cell_of(rnn) is cell
    assert cell.rows(cell.gates[-1], 5) == slice(5 * GATES[name] - 5, 5 * GATES[name])
    model = encoder(name, bidirectional=True)
    assert {type(rnn) for rnn in model.recurrent_modules()} == {cell.module}
    spectra = encoder_spectra(model)
    assert [s.gate for s in spectra] == list(cell.gates) * 4  # two layers, two directions
    assert [s.module for s in spectra[:: len(cell.gates)]] == [
        "layer0.forward",
        "layer0.backward",
        "layer1.forward",
        "layer1.backward",
    ]


@pytest.mark.parametrize(("cell", "bidirectional"), PAIRS)
def test_orthogonal_init_gives_orthogonal_recurrent_gate_blocks(cell, bidirectional):
    hidden = 6
    model = encoder(cell, bidirectional, hidden_size=hidden, init="orthogonal")
    eye = torch.eye(hidden)
    for rnn in model.recurrent_modules():
        assert rnn.weight_hh_l0.shape == (GATES[cell] * hidden, hidden)
        for gate in range(GATES[cell]):
            block = rnn.weight_hh_l0[gate * hidden : (gate + 1) * hidden].detach()
            torch.testing.assert_close(block @ block.T, eye, atol=1e-5, rtol=0)
    default = encoder(cell, bidirectional, hidden_size=hidden, init="default")
    block = default.recurrent_modules()[0].weight_hh_l0[:hidden].detach()
    assert not torch.allclose(block @ block.T, eye, atol=1e-2)


def test_reverse_within_lengths_reverses_real_steps_only():
    x = torch.arange(15).view(3, 5)
    lengths = torch.tensor([5, 3, 1])
    expected = torch.tensor([[4, 3, 2, 1, 0], [7, 6, 5, 8, 9], [10, 11, 12, 13, 14]])
    assert torch.equal(reverse_within_lengths(x, lengths), expected)
    # With a feature dimension every feature moves with its step; reversing twice is the identity.
    features = torch.stack([x, -x], dim=-1)
    out = reverse_within_lengths(features, lengths)
    assert torch.equal(out, torch.stack([expected, -expected], dim=-1))
    assert torch.equal(reverse_within_lengths(out, lengths), features)


@pytest.mark.parametrize(
    ("kwargs", "key", "allowed"),
    [
        ({"cell": "transformer"}, "model.cell", CELLS),
        ({"pooling": "sum"}, "model.pooling", POOLINGS),
        ({"init": "xavier"}, "model.init", INITS),
    ],
)
def test_invalid_encoder_config_names_the_key_and_the_allowed_values(kwargs, key, allowed):
    with pytest.raises(ConfigError, match=re.escape(key)) as error:
        EncoderConfig(**kwargs)
    assert all(value in str(error.value) for value in allowed)
    assert repr(next(iter(kwargs.values()))) in str(error.value)


def test_invalid_scheduler_names_the_key_and_the_allowed_values():
    with pytest.raises(ConfigError, match=re.escape("optim.scheduler")) as error:
        SequenceClassifier(VOCAB, 2, {"hidden_size": 4, "embedding_dim": 3}, scheduler="cosine")
    assert all(value in str(error.value) for value in ("plateau", "onecycle", "none", "'cosine'"))
    with pytest.raises(ConfigError, match=re.escape("model.cell")):
        SequenceClassifier(VOCAB, 2, {"cell": "transformer"})
