"""Diagnostics: gradient flow on hand-built recurrences, gate spectra of known matrices, the model-level
measurement for every cell, the fixed batch, and the three callbacks in real fits (MLflow on SQLite)."""

from __future__ import annotations

import math
import pickle

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from mlflow import MlflowClient
from torch import nn

from rnnlab.data.store import EncodedSplit
from rnnlab.diagnostics import clipping
from rnnlab.diagnostics.callbacks import ClippingMonitor, GradientFlowMonitor, RecurrentWeightMonitor
from rnnlab.diagnostics.gradient_flow import fixed_batch, gradient_flow, rnn_gradient_flow
from rnnlab.diagnostics.recurrent_weights import gate_spectra
from rnnlab.errors import ConfigError
from rnnlab.tasks.classification.classifier import SequenceClassifier
from rnnlab.tasks.classification.sequence_data import SequenceDataModule
from synthetic import VOCAB_SIZE

STEPS = 40


def set_recurrence(rnn: nn.RNNBase, w_hh: torch.Tensor) -> nn.RNNBase:
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(w_hh)
        rnn.bias_hh_l0.zero_()
        rnn.bias_ih_l0.zero_()
    return rnn


@pytest.mark.parametrize("a", [0.9, 1.1])
def test_linear_relu_rnn_gives_the_known_decay(a):
    """W_hh = a*I, zero inputs and biases, positive h0: h_t = a^t h0 stays positive, so ReLU is the identity
    and dL/dh_t = (a I)^d dL/dh_{T-1}: the whole curve is a^d times its first point."""
    torch.manual_seed(0)
    rnn = set_recurrence(nn.RNN(3, 5, nonlinearity="relu", batch_first=True), a * torch.eye(5))
    h0 = torch.rand(1, 4, 5) + 0.5
    readout = torch.randn(5)
    curve = rnn_gradient_flow(rnn, torch.zeros(4, STEPS, 3), lambda h: (h @ readout).square().sum(), h0)
    assert curve.shape == (STEPS,) and curve[0] > 0
    np.testing.assert_allclose(curve, a ** np.arange(STEPS) * curve[0], rtol=1e-5)


def test_orthogonal_tanh_rnn_keeps_the_norm_and_a_contracted_one_decays():
    """Near 0, tanh' ~ 1 and the step Jacobian is W_hh^T: orthogonal W keeps ||dL/dh||, 0.5 W halves it."""
    torch.manual_seed(0)
    orthogonal = nn.init.orthogonal_(torch.empty(16, 16))
    inputs, h0 = torch.zeros(8, STEPS, 2), 1e-3 * torch.randn(1, 8, 16)
    readout = torch.randn(16)
    curves = {}
    for scale in (1.0, 0.5):
        rnn = set_recurrence(nn.RNN(2, 16, batch_first=True), scale * orthogonal)
        curves[scale] = rnn_gradient_flow(rnn, inputs, lambda h: (h @ readout).sum(), h0)
    flat, decayed = curves[1.0] / curves[1.0][0], curves[0.5] / curves[0.5][0]
    assert np.all(np.abs(flat - 1) < 1e-3)
    assert decayed[10] == pytest.approx(0.5**10, rel=1e-3) and decayed[-1] < 1e-11


def rotation(angle: float, r: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return r * torch.tensor([[c, -s], [s, c]])


# Per gate: a W_hh block and its (spectral radius, largest singular value). The nilpotent block has radius 0
# but stretches by 2, so the two numbers differ.
BLOCKS = [
    (torch.diag(torch.tensor([0.5, -0.8])), (0.8, 0.8)),
    (rotation(0.7, 0.95), (0.95, 0.95)),
    (torch.tensor([[0.0, 2.0], [0.0, 0.0]]), (0.0, 2.0)),
    (torch.diag(torch.tensor([3.0, 1.0])), (3.0, 3.0)),
]


@pytest.mark.parametrize(("cell", "gates"), [(nn.RNN, "h"), (nn.LSTM, "ifgo"), (nn.GRU, "rzn")])
def test_gate_spectra_of_known_blocks(cell, gates):
    blocks = BLOCKS[: len(gates)] if cell is not nn.GRU else BLOCKS[1:]
    rnn = set_recurrence(cell(2, 2, batch_first=True), torch.cat([block for block, _ in blocks]))
    spectra = gate_spectra(rnn, "layer0.forward")
    assert [s.gate for s in spectra] == list(gates) and {s.module for s in spectra} == {"layer0.forward"}
    for spectrum, (_, (radius, sigma)) in zip(spectra, blocks, strict=True):
        assert spectrum.spectral_radius == pytest.approx(radius, abs=1e-6)
        assert spectrum.sigma_max == pytest.approx(sigma, abs=1e-6)


def test_bare_modules_that_cannot_be_unrolled_are_refused():
    with pytest.raises(ConfigError, match="bidirectional=True"):
        rnn_gradient_flow(nn.GRU(2, 3, batch_first=True, bidirectional=True), torch.zeros(1, 4, 2), torch.sum)
    with pytest.raises(ConfigError, match="num_layers=1"):
        gate_spectra(nn.LSTM(2, 3, num_layers=2))
    with pytest.raises(ConfigError, match="Linear is not a supported recurrent module; allowed: RNN, LSTM"):
        gate_spectra(nn.Linear(2, 2))


def classifier(cell: str, bidirectional: bool = False, num_layers: int = 1) -> SequenceClassifier:
    torch.manual_seed(0)
    encoder = {
        "cell": cell,
        "bidirectional": bidirectional,
        "num_layers": num_layers,
        "hidden_size": 8,
        "embedding_dim": 6,
        "pooling": "last",
        "dropout": 0.2,
        "embedding_dropout": 0.2,
    }
    return SequenceClassifier(VOCAB_SIZE, 2, encoder, head_dropout=0.3)


@pytest.mark.parametrize(
    ("cell", "bidirectional", "num_layers"),
    [("rnn", False, 1), ("lstm", False, 1), ("gru", False, 1), ("lstm", True, 1), ("gru", True, 2)],
)
def test_model_level_curves_for_every_cell(cell, bidirectional, num_layers):
    model = classifier(cell, bidirectional, num_layers)
    ids = torch.randint(2, VOCAB_SIZE, (5, 30))
    lengths, labels = torch.full((5,), 30), torch.tensor([0, 1, 1, 0, 1])
    flow = gradient_flow(model, ids, lengths, labels)
    assert list(flow.curves) == [f"layer{i}.forward" for i in range(num_layers)]
    for curve in flow.curves.values():
        assert curve.shape == (30,) and np.isfinite(curve).all() and (curve > 0).all()
    model.eval()  # the unrolled float64 copy computes the model's own loss (pooling "last", no dropout)
    expected_loss = nn.functional.cross_entropy(model(ids, lengths), labels).item()
    assert flow.loss == pytest.approx(expected_loss, rel=1e-5)
    model.train()
    assert all(p.grad is None for p in model.parameters())  # the live model is left alone
    distance, ratio = flow.ratio(100)
    first = flow.curves["layer0.forward"]
    assert distance == 29 and ratio == pytest.approx(first[29] / first[0])


def test_model_level_measurement_refuses_padded_batches():
    ids = torch.ones(2, 5, dtype=torch.long)
    with pytest.raises(ConfigError, match="without padding"):
        gradient_flow(classifier("gru"), ids, torch.tensor([5, 3]), torch.zeros(2, dtype=torch.long))


def toy_split(padding: str) -> EncodedSplit:
    """Row i holds the tokens 100*i + 1 ... 100*i + length_i, padded on `padding`'s side."""
    lengths = np.array([3, 9, 6, 12, 8])
    ids = np.zeros((5, 12), np.int64)
    for i, n in enumerate(lengths):
        tokens = 100 * i + np.arange(1, n + 1)
        ids[i, :n] = tokens if padding == "post" else 0
        ids[i, 12 - n :] = tokens if padding == "pre" else ids[i, 12 - n :]
    return EncodedSplit(ids, lengths, lengths, np.arange(5) % 2)


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_fixed_batch_keeps_the_last_real_tokens(padding):
    split = toy_split(padding)
    batch = fixed_batch(split, padding, steps=6, rows=3, seed=1)
    assert batch.note == "" and batch.ids.shape == (3, 6) and (batch.lengths == 6).all()
    assert set(batch.rows) <= {1, 2, 3, 4} and list(batch.rows) == sorted(batch.rows)
    for row, ids in zip(batch.rows, batch.ids, strict=True):
        n = split.lengths[row]
        assert ids.tolist() == list(100 * row + np.arange(n - 5, n + 1))
    assert batch.labels.tolist() == [row % 2 for row in batch.rows]
    assert np.array_equal(fixed_batch(split, padding, 6, 3, seed=1).rows, batch.rows)  # deterministic
    longest = fixed_batch(split, padding, steps=50, rows=2)
    assert list(longest.rows) == [1, 3] and longest.steps == 9 and "no row has 50 tokens" in longest.note
    with pytest.raises(ConfigError, match="middle"):
        fixed_batch(split, "middle", steps=6)


def test_monitor_arguments_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="'first'"):
        GradientFlowMonitor(tmp_path, epochs=[0, "first"], out_dir=tmp_path)
    with pytest.raises(ConfigError, match="distance=0"):
        GradientFlowMonitor(tmp_path, distance=0, out_dir=tmp_path)


def fit(encoded, out_dir, clip_val, logger=False, max_epochs=2, ckpt_path=None, callbacks=None):
    L.seed_everything(0)
    data = SequenceDataModule(encoded, batch_size=32)
    model = classifier("rnn")
    callbacks = callbacks or [
        GradientFlowMonitor(encoded, epochs=[0, "last"], steps=10, distance=5, out_dir=out_dir),
        RecurrentWeightMonitor(out_dir),
        ClippingMonitor(out_dir),
    ]
    checkpoints = any(isinstance(c, ModelCheckpoint) for c in callbacks)
    trainer = L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=logger,
        gradient_clip_val=clip_val,
        callbacks=callbacks,
        enable_checkpointing=checkpoints,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return trainer


def test_callbacks_write_tables_figures_artifacts_and_metrics(data, tmp_path):
    encoded, _ = data
    out = tmp_path / "diagnostics"
    logger = MLFlowLogger(experiment_name="diag", tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    trainer = fit(encoded, out, clip_val=1e-6, logger=logger)
    assert pickle.loads(pickle.dumps(trainer.callbacks[:3]))  # ddp_spawn pickles the callbacks

    flow = pd.read_csv(out / "gradient_flow.csv")
    assert list(flow.columns) == ["epoch", "module", "distance", "grad_norm"]
    assert list(dict.fromkeys(flow["epoch"])) == ["init", "0", "1"]  # "last" is epoch 1, measured once
    assert (flow.groupby("epoch")["distance"].max() == 9).all() and (flow["grad_norm"] > 0).all()
    weights = pd.read_csv(out / "recurrent_weights.csv")
    assert list(weights["epoch"]) == ["init", "0", "1"] and set(weights["gate"]) == {"h"}
    assert weights.loc[0, "spectral_radius"] == pytest.approx(1.0, abs=1e-5)  # orthogonal init
    clip = pd.read_csv(out / "clipping.csv")
    assert list(clip["epoch"]) == [0, 1] and (clip["steps"] == 7).all()  # 200 rows / 32 per batch
    assert (clip["clip_fraction"] == 1.0).all()
    histogram = pd.read_csv(out / "clipping_histogram.csv")
    assert histogram.groupby("epoch")["count"].sum().tolist() == [7, 7]
    files = {
        "gradient_flow.csv",
        "gradient_flow.png",
        "recurrent_weights.csv",
        "recurrent_weights.png",
        "clipping.csv",
        "clipping_histogram.csv",
        "clipping_histogram.png",
    }
    assert {p.name for p in out.iterdir()} == files  # and no temporary files left behind

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    run_id = logger.run_id
    artifacts = client.list_artifacts(run_id, "diagnostics")
    assert {a.path.removeprefix("diagnostics/") for a in artifacts} == files

    def history(key):
        points = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        return [(m.step, m.value) for m in points]

    ratios = history("gradflow/ratio_d5")
    curves = flow[flow["distance"].isin([0, 5])].pivot(index="epoch", columns="distance", values="grad_norm")
    expected = (curves[5] / curves[0]).loc[["init", "0", "1"]].tolist()
    assert [s for s, _ in ratios] == [0, 1, 2] and [v for _, v in ratios] == pytest.approx(expected)
    assert [v for _, v in history("gradflow/log10_ratio_d5")] == pytest.approx(np.log10(expected))
    radius = history("weights/layer0.forward/h/spectral_radius")
    assert [v for _, v in radius] == pytest.approx(weights["spectral_radius"].tolist())
    assert len(history("weights/layer0.forward/h/sigma_max")) == 3
    assert [v for _, v in history("train/clip_fraction")] == [1.0, 1.0]
    p50, p99 = history("train/grad_norm_p50"), history("train/grad_norm_p99")
    assert [v for _, v in p50] == pytest.approx(clip["grad_norm_p50"].tolist())
    assert all(a <= b for (_, a), (_, b) in zip(p50, p99, strict=True))


def test_clipping_is_counted_by_the_trainer_algorithm():
    norms, largest = np.array([0.5, 2.0, 3.0]), np.array([0.4, 0.9, 2.5])
    assert clipping.clipped(norms, largest, 1.0, "norm").tolist() == [False, True, True]
    assert clipping.clipped(norms, largest, 1.0, "value").tolist() == [False, False, True]
    assert not clipping.clipped(norms, largest, None, "norm").any()
    assert not clipping.clipped(norms, largest, 0.0, "value").any()  # Lightning skips clipping at <= 0
    grads = [torch.tensor([3.0, -4.0]), torch.tensor([[12.0]])]
    norm, peak = clipping.step_statistics(grads)
    assert norm.item() == pytest.approx(13.0) and peak.item() == 12.0


@pytest.mark.parametrize("clip_val", [1e6, None])
def test_no_clipping_when_the_threshold_is_never_reached_or_unset(data, tmp_path, clip_val):
    encoded, _ = data
    fit(encoded, tmp_path, clip_val, callbacks=[ClippingMonitor(tmp_path)])
    clip = pd.read_csv(tmp_path / "clipping.csv")
    assert (clip["clip_fraction"] == 0.0).all() and (clip["steps"] == 7).all()
    assert (clip["grad_norm_max"] > 0).all()  # the norms are recorded all the same


def test_resumed_fit_continues_the_tables(data, tmp_path):
    encoded, _ = data
    out = tmp_path / "diagnostics"

    def callbacks():
        return [
            GradientFlowMonitor(encoded, epochs="last", steps=10, distance=5, out_dir=out),
            RecurrentWeightMonitor(out),
            ClippingMonitor(out),
            ModelCheckpoint(dirpath=tmp_path, filename="last", monitor=None),
        ]

    fit(encoded, out, 1.0, max_epochs=1, callbacks=callbacks())
    fit(encoded, out, 1.0, max_epochs=2, callbacks=callbacks(), ckpt_path=tmp_path / "last.ckpt")
    # The checkpoint holds each epoch's weight spectra and clipping rows; "last" is the final epoch of the
    # resumed run (the first run's "last", taken after its checkpoint, is not carried over).
    assert list(pd.read_csv(out / "recurrent_weights.csv")["epoch"]) == ["init", "0", "1"]
    assert list(dict.fromkeys(pd.read_csv(out / "gradient_flow.csv")["epoch"])) == ["init", "1"]
    assert list(pd.read_csv(out / "clipping.csv")["epoch"]) == [0, 1]
