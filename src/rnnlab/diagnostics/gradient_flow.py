"""Gradient flow through time: how much of the loss's gradient reaches the hidden state t steps back.

Definition. Take a `RecurrentEncoder`-based classifier in eval mode (no dropout) and a batch of real sequences
of one length T (no padding). L is the cross-entropy of the model's head applied to the encoder's
`Pooling("last")` features, whatever pooling the model was configured with, so the only path from h_t to L
runs through the recurrence (and the layers above). For the FORWARD direction of every layer we report
||dL/dh_t|| (the 2-norm of each row's gradient, averaged over the batch) for t = T-1 ... 0, i.e. against the
distance d = T-1-t from the output. h_t is the hidden state (for an LSTM h, not the cell state c) that step
t hands to step t+1 and to the layer above: each forward nn.RNN/LSTM/GRU is unrolled one step at a time with
its own weights. A bidirectional layer's backward direction runs normally (it feeds the layer above and the
pooled features) but is not measured: its "distance from the output" runs the other way.

The summary is `ratio` = norm at distance d (default 100, or the largest available) / norm at distance 0,
of the first layer's forward direction. A vanilla RNN's ratio typically falls by orders of magnitude (the
vanishing gradient); gated cells keep it much closer to 1.

The measurement runs on a float64 copy of the recurrent modules and the head, so it neither underflows for
long distances nor touches the live model (its mode, its parameters' `.grad`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rnnlab.data.store import SPLITS, EncodedSplit
from rnnlab.errors import ConfigError, LayoutError
from rnnlab.io import read_json
from rnnlab.models.pooling import Pooling

DEFAULT_STEPS = 200
DEFAULT_DISTANCE = 100
SUMMARY_MODULE = "layer0.forward"
PADDINGS = ("post", "pre")
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # an initial state: h, or (h, c) for an LSTM


def check_unrollable(rnn: nn.RNNBase, name: str = "rnn") -> None:
    """The modules `unroll` handles: one layer, one direction, batch_first, no LSTM projection."""
    if rnn.num_layers != 1 or rnn.bidirectional or not rnn.batch_first or getattr(rnn, "proj_size", 0):
        raise ConfigError(
            f"{name}: gradient flow unrolls a one-layer, one-direction, batch_first {type(rnn).__name__} "
            f"without projection; got num_layers={rnn.num_layers}, bidirectional={rnn.bidirectional}, "
            f"batch_first={rnn.batch_first}, proj_size={getattr(rnn, 'proj_size', 0)}"
        )


def leaf_state(state: torch.Tensor) -> torch.Tensor:
    """A copy of an initial state that starts the graph (requires grad) whatever the caller passed."""
    return state.detach().clone().requires_grad_()


def unroll(
    rnn: nn.RNNBase, inputs: torch.Tensor, hx: State | None = None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run `rnn` over `inputs` [B, T, I] one step at a time: (outputs [B, T, H], the hidden states).

    Each state h_t [1, B, H] is the very tensor that step t+1 reads and that the outputs are built from, so
    its gradient collects every path to the loss. The initial state (zeros unless `hx`) requires grad, so
    the states are in the graph even when the weights are frozen.
    """
    check_unrollable(rnn)
    size = (1, inputs.size(0), rnn.hidden_size)
    if hx is None:
        zeros = inputs.new_zeros(size)
        hx = (zeros, zeros.clone()) if isinstance(rnn, nn.LSTM) else zeros
    hx = tuple(map(leaf_state, hx)) if isinstance(hx, tuple) else leaf_state(hx)
    states = []
    for t in range(inputs.size(1)):
        _, hx = rnn(inputs[:, t : t + 1], hx)
        states.append(hx[0] if isinstance(hx, tuple) else hx)
    return torch.cat(states).transpose(0, 1), states


def norms_by_distance(loss: torch.Tensor, states: dict[str, list[torch.Tensor]]) -> dict[str, np.ndarray]:
    """Per module, the batch mean of the per-row norms of dL/dh_t, indexed by distance d = T-1-t."""
    flat = [state for module in states.values() for state in module]
    norms = torch.stack([grad[0].norm(dim=-1).mean() for grad in torch.autograd.grad(loss, flat)])
    norms = norms.detach().cpu().numpy().astype(np.float64).reshape(len(states), -1)  # [module, t]
    return {name: curve[::-1].copy() for name, curve in zip(states, norms, strict=True)}


def rnn_gradient_flow(
    rnn: nn.RNNBase,
    inputs: torch.Tensor,
    loss_of_last: Callable[[torch.Tensor], torch.Tensor],
    hx: State | None = None,
) -> np.ndarray:
    """||dL/dh_t|| by distance for a bare `rnn`, where L = `loss_of_last(h_{T-1} [B, H])`."""
    with torch.inference_mode(False), torch.enable_grad():
        _, states = unroll(rnn, inputs, hx)
        return norms_by_distance(loss_of_last(states[-1][0]), {"rnn": states})["rnn"]


@dataclass(frozen=True)
class GradientFlow:
    """Curves (module -> ||dL/dh|| at distance 0 ... T-1) and the loss L they are the gradients of."""

    curves: dict[str, np.ndarray]
    loss: float

    def ratio(self, distance: int = DEFAULT_DISTANCE, module: str = SUMMARY_MODULE) -> tuple[int, float]:
        """(distance used: `distance` or the largest available, norm there / norm at distance 0)."""
        curve = self.curves[module]
        used = min(distance, len(curve) - 1)
        return used, float(curve[used] / curve[0]) if curve[0] > 0 else float("nan")

    def rows(self, epoch: str | int) -> list[list]:
        """[epoch, module, distance, grad_norm] per point of every curve, as plain Python values."""
        curves = self.curves.items()
        return [[epoch, module, d, float(norm)] for module, curve in curves for d, norm in enumerate(curve)]


def gradient_flow(
    model: nn.Module, ids: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor
) -> GradientFlow:
    """The gradient flow of a classifier (`encoder`: RecurrentEncoder, `head`) on one unpadded batch."""
    encoder, head = getattr(model, "encoder", None), getattr(model, "head", None)
    if not hasattr(encoder, "layers") or not isinstance(head, nn.Module):
        raise ConfigError(
            f"{type(model).__name__}: gradient flow needs a classifier with a RecurrentEncoder "
            "`encoder` and a `head` (e.g. SequenceClassifier)"
        )
    steps = ids.size(1)
    if not bool((lengths == steps).all()):
        raise ConfigError(
            f"gradient flow needs sequences without padding: every length must equal "
            f"ids.shape[1]={steps}, got lengths {sorted(set(lengths.tolist()))}"
        )
    device = next(model.parameters()).device
    with torch.inference_mode(False), torch.enable_grad():
        ids = ids.to(device)
        x = ids if encoder.embedding is None else encoder.embedding(ids).detach()  # normalised too (AT/VAT)
        x = x.double()
        states = {}
        for depth, layer in enumerate(encoder.layers):
            out, states[f"layer{depth}.forward"] = unroll(copy.deepcopy(layer.forward_rnn).double(), x)
            if layer.backward_rnn is not None:  # no padding: reversing within lengths is a flip
                back, _ = copy.deepcopy(layer.backward_rnn).double()(x.flip(1))
                out = torch.cat([out, back.flip(1)], dim=-1)
            x = out
        full = torch.full((ids.size(0),), steps, device=device)
        mask = torch.ones(ids.shape[:2], dtype=torch.bool, device=device)
        pooled = Pooling("last", encoder.config.hidden_size, encoder.config.directions)(x, full, mask)
        logits = copy.deepcopy(head).double().eval()(pooled)
        loss = nn.functional.cross_entropy(logits, labels.to(device))
        return GradientFlow(norms_by_distance(loss, states), loss.item())


@dataclass(frozen=True)
class FixedBatch:
    """Rows of a split cut to their last `steps` real tokens; `note` says when fewer steps had to do."""

    ids: torch.Tensor  # [N, steps] int64, no padding
    labels: torch.Tensor  # [N] int64
    rows: np.ndarray  # row indices in the split
    note: str = ""

    @property
    def steps(self) -> int:
        return self.ids.size(1)

    @property
    def lengths(self) -> torch.Tensor:
        return torch.full((self.ids.size(0),), self.steps, dtype=torch.int64)


def fixed_batch(split: EncodedSplit, padding: str, steps: int, rows: int = 64, seed: int = 0) -> FixedBatch:
    """`rows` rows (chosen by `seed`) with at least `steps` tokens, keeping their LAST `steps` real tokens.

    When no row is that long, the `rows` longest rows are cut to the shortest of their lengths (see `note`).
    """
    if padding not in PADDINGS:
        raise ConfigError(f"padding={padding!r} is not allowed; choose one of: {', '.join(PADDINGS)}")
    for key, value in (("steps", steps), ("rows", rows)):
        if not isinstance(value, int) or value < 1:
            raise ConfigError(f"gradient flow {key}={value!r} must be a positive integer")
    lengths = np.asarray(split.lengths, dtype=np.int64)
    long = np.flatnonzero(lengths >= steps)
    note = ""
    if len(long):
        chosen = np.sort(np.random.default_rng(seed).choice(long, size=min(rows, len(long)), replace=False))
    else:
        chosen = np.sort(np.argsort(-lengths, kind="stable")[:rows])
        shortest = int(lengths[chosen].min())
        if shortest < 1:
            raise LayoutError("gradient flow found no row with any tokens in the split")
        note = (
            f"no row has {steps} tokens; used the {len(chosen)} longest rows, cut to the shortest of "
            f"them: {shortest} steps"
        )
        steps = shortest
    ids = np.asarray(split.ids[chosen], dtype=np.int64)
    if padding == "post":
        ends = lengths[chosen]
        index = ends[:, None] - steps + np.arange(steps)[None, :]
        ids = np.take_along_axis(ids, index, axis=1)
    else:
        ids = ids[:, ids.shape[1] - steps :]
    labels = torch.as_tensor(np.asarray(split.labels[chosen], dtype=np.int64))
    return FixedBatch(torch.from_numpy(np.ascontiguousarray(ids)), labels, chosen, note)


@dataclass(frozen=True)
class EncodedBatchSource:
    """Picklable recipe for the gradient-flow batch: `rows` rows of `split` of an encode-stage folder."""

    encoded_dir: str | Path
    split: str = "val"
    rows: int = 64
    seed: int = 0

    def batch(self, steps: int) -> FixedBatch:
        if self.split not in SPLITS:
            raise ConfigError(
                f"gradient flow split={self.split!r} is not allowed; choose one of: {', '.join(SPLITS)}"
            )
        folder = Path(self.encoded_dir)
        if not (folder / "meta.json").is_file():
            raise LayoutError(f"{folder / 'meta.json'} is missing: run `dvc repro encode` first")
        padding = read_json(folder / "meta.json")["padding"]
        return fixed_batch(EncodedSplit.load(folder / self.split), padding, steps, self.rows, self.seed)
