"""Spectra of the recurrent weights W_hh, per module (layer, direction) and gate.

PyTorch stacks the gates of a cell along the rows of `weight_hh_l0`, in the order of its `gates` in
rnnlab.models.cells (rnn: h; lstm: i, f, g, o; gru: r, z, n). For each gate's [H, H] block this reports the
spectral radius (max |eigenvalue|: whether repeated application grows or shrinks a state in the long run) and
the largest singular value (the most it can stretch any one step). A linear recurrence forgets when the
radius is below 1 and explodes above it: the "edge of chaos" sits at 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.models.cells import cell_of


@dataclass(frozen=True)
class GateSpectrum:
    module: str
    gate: str
    spectral_radius: float
    sigma_max: float


def named_recurrent_modules(encoder: nn.Module) -> list[tuple[str, nn.RNNBase]]:
    """`(layer<i>.forward | layer<i>.backward, module)` for each recurrent module of a `RecurrentEncoder`."""
    layers = getattr(encoder, "layers", None)
    if layers is None:
        raise ConfigError(f"{type(encoder).__name__} is not a RecurrentEncoder: it has no `layers`")
    named = []
    for depth, layer in enumerate(layers):
        named.append((f"layer{depth}.forward", layer.forward_rnn))
        if layer.backward_rnn is not None:
            named.append((f"layer{depth}.backward", layer.backward_rnn))
    return named


@torch.no_grad()
def gate_spectra(rnn: nn.RNNBase, module: str = "rnn") -> list[GateSpectrum]:
    """Spectral radius and largest singular value of each gate's W_hh block of a one-layer `rnn`."""
    gates = cell_of(rnn).gates
    if rnn.num_layers != 1 or rnn.bidirectional or getattr(rnn, "proj_size", 0):
        raise ConfigError(
            f"{module}: expected a one-layer, one-direction {type(rnn).__name__} without projection "
            f"(num_layers=1, bidirectional=False, proj_size=0)"
        )
    blocks = rnn.weight_hh_l0.detach().to("cpu", torch.float64).reshape(len(gates), rnn.hidden_size, -1)
    radius = torch.linalg.eigvals(blocks).abs().amax(dim=-1)
    sigma = torch.linalg.matrix_norm(blocks, ord=2)
    return [
        GateSpectrum(module, gate, float(r), float(s))
        for gate, r, s in zip(gates, radius.tolist(), sigma.tolist(), strict=True)
    ]


def encoder_spectra(encoder: nn.Module) -> list[GateSpectrum]:
    """`gate_spectra` of each recurrent module of a `RecurrentEncoder`, named by `named_recurrent_modules`."""
    modules = named_recurrent_modules(encoder)
    return [spectrum for name, rnn in modules for spectrum in gate_spectra(rnn, name)]
