"""Gradient flow and recurrent spectra of trained checkpoints against the same models at initialisation.

    python bench/bench_gradient_flow.py --encoded data/encoded/imdb --models models/imdb [--cells rnn,gru]
    python bench/bench_gradient_flow.py --encoded data/encoded/imdb --plot flow.png \
        --checkpoint "rnn=models/imdb/rnn/checkpoints/best.ckpt" --checkpoint "rnn word2vec=<run>/best.ckpt"

For each cell, `<models>/<cell>/checkpoints/best.ckpt` (trained) and a fresh `SequenceClassifier` built from
the checkpoint's hyperparameters after `seed_everything(--seed)` (the initialisation `train.py` starts from:
it seeds with `seed` before building the model) are measured with the training callback's functions
(rnnlab.diagnostics): ||dL/dh_t|| of the first layer's forward direction on the same fixed batch of
validation reviews (`--rows` reviews with at least `--steps` tokens, cut to their last `--steps`), reported
as the ratio at distances 50, 100 and steps-1 to distance 0; and the spectral radius of each gate's W_hh.
It measures checkpoints trained before the callback existed, or runs whose callback chose other epochs.
`--checkpoint LABEL=PATH` (repeatable) measures the named checkpoints instead (e.g. a cell with and without
pretraining); `--plot` draws each trained model's curve, log10 of the ratio against the distance, with each
architecture's initialisation dashed.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import lightning as L
import numpy as np
from matplotlib.figure import Figure

from machine import cpu_model
from rnnlab.diagnostics.gradient_flow import SUMMARY_MODULE, EncodedBatchSource, gradient_flow
from rnnlab.diagnostics.recurrent_weights import encoder_spectra
from rnnlab.tasks.classification.classifier import SequenceClassifier


def measure(model: SequenceClassifier, batch) -> tuple[np.ndarray, dict[int, float], dict[str, float]]:
    """The first layer's forward curve over its value at d = 0, its ratios at 50, 100 and T-1, the radii."""
    flow = gradient_flow(model, batch.ids, batch.lengths, batch.labels)
    curve = flow.curves[SUMMARY_MODULE]
    ratios = {d: flow.ratio(d)[1] for d in (50, 100, batch.steps - 1)}
    spectra = {f"{s.module}.{s.gate}": s.spectral_radius for s in encoder_spectra(model.encoder)}
    return curve / curve[0], ratios, spectra


def labelled_checkpoints(args: argparse.Namespace) -> dict[str, Path]:
    """LABEL -> checkpoint: the `--checkpoint` pairs, else `<models>/<cell>/checkpoints/best.ckpt` by cell."""
    if not args.checkpoint:
        if args.models is None:
            raise SystemExit("give --models or at least one --checkpoint LABEL=PATH")
        best = "checkpoints/best.ckpt"
        pairs = [(cell, "=", str(args.models / cell / best)) for cell in args.cells.split(",")]
    else:
        pairs = [entry.partition("=") for entry in args.checkpoint]
    bad = [label for label, sep, path in pairs if not (label and sep and path)]
    if bad:
        raise SystemExit(f"--checkpoint wants LABEL=PATH, got: {', '.join(args.checkpoint)}")
    missing = [path for _, _, path in pairs if not Path(path).is_file()]
    if missing:
        raise SystemExit(f"no checkpoint at: {', '.join(missing)} (a LABEL holds no '=')")
    return {label: Path(path) for label, _, path in pairs}


def plot(curves: dict[str, np.ndarray], inits: dict[str, np.ndarray], path: Path) -> None:
    """log10 ratio against distance: a solid line per trained model, a grey broken one per initialisation."""
    figure = Figure(figsize=(7, 4.2), dpi=120, layout="constrained")
    ax = figure.subplots()
    for i, (label, curve) in enumerate(curves.items()):
        ax.plot(np.log10(curve), color=f"C{i % 10}", label=label)
    for i, (cell, curve) in enumerate(inits.items()):
        ax.plot(
            np.log10(curve),
            color="grey",
            ls=("--", ":", "-.")[i % 3],
            label=f"{cell} at initialisation",
        )
    ax.set(
        xlabel="distance from the output d",
        ylabel="log10 ||dL/dh_(T-1-d)|| / ||dL/dh_(T-1)||",
        title="How far back the gradient reaches (first layer, forward)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.savefig(path, format="png")


def log10(value: float) -> str:
    return f"{math.log10(value):6.1f}" if value > 0 else "  -inf"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoded", type=Path, required=True)
    parser.add_argument("--models", type=Path, help="a folder of <cell>/checkpoints/best.ckpt")
    parser.add_argument("--cells", default="rnn,lstm,gru,bilstm")
    parser.add_argument("--checkpoint", action="append", default=[], help="LABEL=PATH, repeatable")
    parser.add_argument("--plot", type=Path, help="write the curves to this PNG")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    checkpoints = labelled_checkpoints(args)
    batch = EncodedBatchSource(args.encoded, "val", args.rows, args.seed).batch(args.steps)
    print(
        f"machine: {cpu_model()}; batch: {batch.ids.size(0)} validation reviews x {batch.steps} tokens"
        + (f" ({batch.note})" if batch.note else "")
    )
    print("log10 of ||dL/dh_t|| at distance d over d=0 (first layer, forward); W_hh spectral radius per gate")
    width = max(8, *map(len, checkpoints))
    distances = f"{'d=50':>6} {'d=100':>6} {f'd={batch.steps - 1}':>6}"
    print(f"{'model':{width}} {'state':8} {distances}  spectral radius")
    curves, inits = {}, {}
    for label, path in checkpoints.items():
        started = time.perf_counter()
        trained = SequenceClassifier.load_from_checkpoint(path, map_location="cpu")
        L.seed_everything(args.seed, verbose=False)
        fresh = SequenceClassifier(**trained.hparams)
        cell = trained.encoder.config.cell + ("-bi" if trained.encoder.config.directions == 2 else "")
        for state, model in (("init", fresh), ("trained", trained)):
            curve, ratios, spectra = measure(model, batch)
            if state == "trained":
                curves[label] = curve
            else:
                inits.setdefault(cell, curve)  # one dashed line per architecture
            radii = " ".join(
                f"{gate.split('.')[-1]}={value:.2f}"
                for gate, value in spectra.items()
                if gate.startswith("layer0.forward")
            )
            print(f"{label:{width}} {state:8} " + " ".join(log10(r) for r in ratios.values()) + f"  {radii}")
        print(f"{'':{width}} ({time.perf_counter() - started:.1f} s)")
    if args.plot:
        plot(curves, inits, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
