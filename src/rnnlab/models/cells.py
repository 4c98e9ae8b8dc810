"""The recurrent cells: the one registry the encoder builds from (`model.cell`) and the diagnostics name
gates by. PyTorch stacks a cell's gates along the rows of `weight_hh_l0`, `weight_ih_l0` and the biases, in
the order of `gates`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from rnnlab.errors import ConfigError


@dataclass(frozen=True)
class Cell:
    """A recurrent cell: its `model.cell` name, the torch module of one layer and direction, its gates."""

    name: str
    module: type[nn.RNNBase]
    gates: tuple[str, ...]

    def rows(self, gate: str, hidden_size: int) -> slice:
        """The rows of gate `gate` in the stacked weights and biases of a module with `hidden_size` units."""
        start = self.gates.index(gate) * hidden_size
        return slice(start, start + hidden_size)


CELLS: dict[str, Cell] = {
    cell.name: cell
    for cell in (
        Cell("rnn", nn.RNN, ("h",)),
        Cell("lstm", nn.LSTM, ("i", "f", "g", "o")),  # input, forget, cell (candidate), output
        Cell("gru", nn.GRU, ("r", "z", "n")),  # reset, update, new
    )
}


def cell_of(rnn: nn.Module) -> Cell:
    """The registered cell of a torch recurrent module."""
    for cell in CELLS.values():
        if isinstance(rnn, cell.module):
            return cell
    allowed = ", ".join(cell.module.__name__ for cell in CELLS.values())
    raise ConfigError(f"{type(rnn).__name__} is not a supported recurrent module; allowed: {allowed}")
