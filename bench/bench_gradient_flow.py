"""Gradient flow and recurrent spectra of trained checkpoints against the same models at initialisation.

    python bench/bench_gradient_flow.py --encoded data/encoded/imdb --models models/imdb [--cells rnn,gru]

For each cell, `<models>/<cell>/checkpoints/best.ckpt` (trained) and a fresh `SequenceClassifier` built from
the checkpoint's hyperparameters after `seed_everything(--seed)` (the initialisation `train.py` starts from:
it seeds with `seed` before building the model) are measured with the training callback's functions
(rnnlab.diagnostics): ||dL/dh_t|| of the first layer's forward direction on the same fixed batch of
validation reviews (`--rows` reviews with at least `--steps` tokens, cut to their last `--steps`), reported
as the ratio at distances 50, 100 and steps-1 to distance 0; and the spectral radius of each gate's W_hh.
It measures checkpoints trained before the callback existed, or runs whose callback chose other epochs.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import lightning as L

from machine import cpu_model
from rnnlab.diagnostics.gradient_flow import EncodedBatchSource, gradient_flow
from rnnlab.diagnostics.recurrent_weights import encoder_spectra
from rnnlab.tasks.classification.classifier import SequenceClassifier


def measure(model: SequenceClassifier, batch) -> tuple[dict[int, float], dict[str, float]]:
    flow = gradient_flow(model, batch.ids, batch.lengths, batch.labels)
    ratios = {d: flow.ratio(d)[1] for d in (50, 100, batch.steps - 1)}
    spectra = {f"{s.module}.{s.gate}": s.spectral_radius for s in encoder_spectra(model.encoder)}
    return ratios, spectra


def log10(value: float) -> str:
    return f"{math.log10(value):6.1f}" if value > 0 else "  -inf"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--encoded", type=Path, required=True)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--cells", default="rnn,lstm,gru,bilstm")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    batch = EncodedBatchSource(args.encoded, "val", args.rows, args.seed).batch(args.steps)
    print(
        f"machine: {cpu_model()}; batch: {batch.ids.size(0)} validation reviews x {batch.steps} tokens"
        + (f" ({batch.note})" if batch.note else "")
    )
    print("log10 of ||dL/dh_t|| at distance d over d=0 (first layer, forward); W_hh spectral radius per gate")
    header = f"{'cell':8} {'state':8} {'d=50':>6} {'d=100':>6} {f'd={batch.steps - 1}':>6}  spectral radius"
    print(header)
    for cell in args.cells.split(","):
        started = time.perf_counter()
        trained = SequenceClassifier.load_from_checkpoint(
            args.models / cell / "checkpoints" / "best.ckpt", map_location="cpu"
        )
        L.seed_everything(args.seed, verbose=False)
        fresh = SequenceClassifier(**trained.hparams)
        for state, model in (("init", fresh), ("trained", trained)):
            ratios, spectra = measure(model, batch)
            radii = " ".join(
                f"{gate.split('.')[-1]}={value:.2f}"
                for gate, value in spectra.items()
                if gate.startswith("layer0.forward")
            )
            print(f"{cell:8} {state:8} " + " ".join(log10(r) for r in ratios.values()) + f"  {radii}")
        print(f"{'':8} ({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
