"""Side by side with the Keras tutorial recipe: training speed, test accuracy and the data stages' time.

    python bench/bench_keras.py --imdb ../shared/data/imdb/aclImdb_v1_text.tar.gz --epochs 1 --threads 2

Needs TensorFlow (`pip install -e .[bench]`); rnnlab itself never imports it. Every measurement runs in a
fresh process (bench/keras_workers.py), with the same number of threads on both sides.

1. data: the download stage once (untimed) into a temporary folder, then `--data-repeats` rounds of the two
   data stages as processes (`python pipelines/prepare.py`, `python pipelines/encode.py`: max_len 400,
   vocabulary 30,000, the project's defaults) against one process of a Keras script (the tutorial's
   `TextVectorization` with its `<br />`-stripping standardisation, `max_tokens` 30,000, adapted on the
   train texts, then `pad_sequences(maxlen=400)` of train and test, saved as .npy), reading the same
   download-stage tables. Times are whole-process wall times (start-up and imports included); medians.
2. training, on rnnlab's encoded arrays (or `--encoded DIR`): Keras `Embedding(V, 64) ->
   Bidirectional(LSTM(64)) -> Dropout(0.3) -> Dense(1, sigmoid)`, Adam, binary cross-entropy, batch 128,
   the rows pre-padded to 400 (the tutorial's `pad_sequences`), against rnnlab's `model=bilstm` with
   embedding_dim 64 / hidden_size 64 and batch 128 as `train.py` builds it (its AdamW, length-bucketed
   batches), fitted by a Trainer with the project's per-step callbacks (no checkpoints, no validation).
   A batch's time is the interval from the previous batch's end (or the epoch's start) to its end: data,
   step and callbacks; the first `--warmup` batches are left out. Per batch: sequences/s = rows / time,
   timesteps/s = rows x padded width / time (the steps each direction computes, padding included: 400 for
   Keras, the batch's longest review for rnnlab); medians over batches, per wall second and per CPU second
   of the process (all its threads: less sensitive to other work on a shared machine than wall time).
   Test accuracy on the 25,000 test reviews after `--epochs` epochs. `--precision bf16` trains both sides
   with bfloat16 autocast (rnnlab `trainer.precision=bf16-mixed`, Keras's `mixed_bfloat16` policy); float32
   by default.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKERS = Path(__file__).with_name("keras_workers.py")  # the measuring halves, each in a fresh process
BATCH = 128  # keras_workers.BATCH (not imported: this process stays free of numpy, torch and TensorFlow)


def run_worker(kind: str, threads: int, **kwargs) -> dict:
    """Run `kind` in a fresh process with `threads` threads; its JSON answer (the last stdout line)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, str(WORKERS), kind, json.dumps({"threads": threads, **kwargs})]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"worker {kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def timed(command: list[str], threads: int, env: dict | None = None) -> float:
    """Whole-process wall time of `command` (run from the project root)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def stage(name: str, work: Path, threads: int) -> list[str]:
    paths = {key: work / key for key in ("downloads_dir", "raw_dir", "prepared_dir", "encoded_dir")}
    overrides = [f"paths.{key}={path}" for key, path in paths.items()]
    overrides += [f"paths.reports_dir={work / 'reports'}", f"hydra.run.dir={work / 'hydra'}"]
    return [sys.executable, f"pipelines/{name}.py", *overrides, "hydra.output_subdir=null"]


def data_stages(args: argparse.Namespace, work: Path) -> dict:
    """Whole-process times of rnnlab's prepare + encode and of the Keras data script; medians of rounds."""
    timed(stage("download", work, args.threads), args.threads, {"RNNLAB_IMDB_SOURCE": str(args.imdb)})
    times: dict[str, list[float]] = {"prepare": [], "encode": [], "keras": []}
    for round_ in range(args.data_repeats):
        for side in ("rnnlab", "keras") if round_ % 2 == 0 else ("keras", "rnnlab"):
            if side == "keras":
                script = [sys.executable, str(WORKERS), "keras-data"]
                script.append(json.dumps({"raw": str(work / "raw_dir"), "out": str(work / "keras")}))
                times["keras"].append(timed(script, args.threads))
            else:
                for name in ("prepare", "encode"):
                    times[name].append(timed(stage(name, work, args.threads), args.threads))
            took = times["keras"][-1] if side == "keras" else times["prepare"][-1] + times["encode"][-1]
            print(f"  data round {round_ + 1}: {side} {took:.1f} s", flush=True)
    rnnlab = [p + e for p, e in zip(times["prepare"], times["encode"], strict=True)]
    return {"runs": times, "rnnlab": statistics.median(rnnlab), "keras": statistics.median(times["keras"])}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--imdb", type=Path, help="IMDB archive or aclImdb/ folder (the download stage's source)"
    )
    parser.add_argument("--encoded", type=Path,
        help="train on these encoded arrays, data/encoded/<name> (the vocabulary: data/prepared/<name>; "
        "default: the run's own)",
    )  # fmt: skip
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batches", type=int, help="training batches per epoch (default: all)")
    parser.add_argument("--warmup", type=int, default=5, help="first batches left out of the medians")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="both sides")
    parser.add_argument("--data-repeats", type=int, default=3, help="rounds of the data stages (median)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: data, train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--precision", choices=("32", "bf16"), default="32",
        help="training on both sides: float32, or bfloat16 autocast (rnnlab trainer.precision=bf16-mixed, "
        "Keras's mixed_bfloat16 policy)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    args.skip = set(filter(None, args.skip.split(",")))
    if "data" not in args.skip and args.imdb is None:
        parser.error("--imdb is needed for the data stages (or --skip data)")
    if "train" not in args.skip and args.imdb is None and args.encoded is None:
        parser.error("training needs --encoded or --imdb")
    if min(args.epochs, args.threads, args.data_repeats, args.batches or 1) < 1 or args.warmup < 0:
        parser.error("--epochs, --batches, --threads and --data-repeats must be >= 1")
    return args


def report(args: argparse.Namespace, load: tuple[float, float], figures: dict) -> None:
    import numpy as np  # the versions line only

    print(f"\ncommand : {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine : {os.cpu_count()} CPUs, {cpu_model()}, {platform.platform()}")
    print(f"load    : 1-minute load average {load[0]:.2f} at the start, {load[1]:.2f} at the end")
    print(f"versions: Python {platform.python_version()}, numpy {np.__version__}, {figures['versions']}")
    print(f"threads : {args.threads} (OMP_NUM_THREADS; torch.set_num_threads; TF intra- and inter-op)")
    if "data" in figures:
        d = figures["data"]
        runs = " ".join(
            f"{p:.1f}+{e:.1f}" for p, e in zip(d["runs"]["prepare"], d["runs"]["encode"], strict=True)
        )
        print("\ndata stages (whole processes, wall s, median of rounds)")
        print(f"  rnnlab prepare+encode {d['rnnlab']:6.2f}   runs {runs}")
        print(
            f"  keras  vectorize+pad  {d['keras']:6.2f}   runs "
            + " ".join(f"{t:.1f}" for t in d["runs"]["keras"])
        )
        print(f"  rnnlab/keras time {d['rnnlab'] / d['keras']:.2f} (target <= 1.00)")
    if "train" in figures:
        k, r = figures["train"]["keras"], figures["train"]["rnnlab"]
        print(
            f"\ntraining ({args.epochs} epoch(s), batch {BATCH}, precision {args.precision}; "
            f"medians over batches: keras {k['batches']}, rnnlab {r['batches']})"
        )
        print(
            f"{'side':<8} {'seq/s':>7} {'steps/s':>8} {'cpu seq/s':>9} {'cpu steps/s':>11} {'width':>6} "
            f"{'epoch seq/s':>11} {'fit s':>6} {'test acc':>8}"
        )
        for side, f in (("keras", k), ("rnnlab", r)):
            print(
                f"{side:<8} {f['seq_per_s']:>7.1f} {f['steps_per_s'] / 1e3:>7.1f}k "
                f"{f['cpu_seq_per_s']:>9.1f} {f['cpu_steps_per_s'] / 1e3:>10.1f}k {f['mean_width']:>6.1f} "
                f"{f['epoch_seq_per_s']:>11.1f} {f['fit_s']:>6.1f} {f['acc']:>8.2%}"
            )
        for clock_, key in (("wall", ""), ("CPU", "cpu_")):
            seq = r[f"{key}seq_per_s"] / k[f"{key}seq_per_s"]
            steps = r[f"{key}steps_per_s"] / k[f"{key}steps_per_s"]
            print(
                f"rnnlab/keras per {clock_} second: {seq:.2f}x per sequence (target >= 1.5), "
                f"{steps:.2f}x per timestep (target >= 1.0)"
            )


def main() -> int:
    args = parse_args()
    start_load = os.getloadavg()[0]
    figures: dict = {"argv": sys.argv, "threads": args.threads}
    with tempfile.TemporaryDirectory(prefix="bench_keras.") as tmp:
        work = Path(tmp)
        if "data" not in args.skip:
            figures["data"] = data_stages(args, work)
        if "train" not in args.skip:
            if args.encoded is None and "data" in args.skip:
                timed(stage("download", work, 1), 1, {"RNNLAB_IMDB_SOURCE": str(args.imdb)})
                for name in ("prepare", "encode"):
                    timed(stage(name, work, args.threads), args.threads)
            encoded = args.encoded or work / "encoded_dir"
            # the vocabulary: the project's layout (data/encoded/<name> beside data/prepared/<name>)
            prepared = (
                encoded.parent.parent / "prepared" / encoded.name if args.encoded else work / "prepared_dir"
            )
            run = {
                "encoded": str(encoded),
                "prepared": str(prepared),
                "epochs": args.epochs,
                "batches": args.batches,
            }
            run.update(warmup=args.warmup, seed=args.seed, precision=args.precision)
            figures["train"] = {}
            for side in ("keras", "rnnlab"):
                figures["train"][side] = run_worker(f"{side}-train", args.threads, **run)
                print(f"  trained {side}: {figures['train'][side]['seq_per_s']:.1f} seq/s", flush=True)
    figures["versions"] = run_worker("versions", 1)["versions"]
    report(args, (start_load, os.getloadavg()[0]), figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import cpu_model

    sys.exit(main())
