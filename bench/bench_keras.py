"""Side by side with the Keras tutorial recipe: training speed, test accuracy and the data stages' time.

    python bench/bench_keras.py --imdb ../shared/data/imdb/aclImdb_v1_text.tar.gz --epochs 1 --threads 2

Needs TensorFlow (`pip install -e .[bench]`); rnnlab itself never imports it. Every measurement runs in a
fresh process (this script re-runs itself as a worker), with the same number of threads on both sides.

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
   Test accuracy on the 25,000 test reviews after `--epochs` epochs.
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
MAX_LEN, VOCAB, SIZE, BATCH = 400, 30000, 64, 128


def run_worker(kind: str, threads: int, **kwargs) -> dict:
    """Run `kind` in a fresh process with `threads` threads; its JSON answer (the last stdout line)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, __file__, "--worker", kind, json.dumps({"threads": threads, **kwargs})]
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
                script = [sys.executable, __file__, "--worker", "keras-data"]
                script.append(json.dumps({"raw": str(work / "raw_dir"), "out": str(work / "keras")}))
                times["keras"].append(timed(script, args.threads))
            else:
                for name in ("prepare", "encode"):
                    times[name].append(timed(stage(name, work, args.threads), args.threads))
            took = times["keras"][-1] if side == "keras" else times["prepare"][-1] + times["encode"][-1]
            print(f"  data round {round_ + 1}: {side} {took:.1f} s", flush=True)
    rnnlab = [p + e for p, e in zip(times["prepare"], times["encode"], strict=True)]
    return {"runs": times, "rnnlab": statistics.median(rnnlab), "keras": statistics.median(times["keras"])}


def keras_data(raw: str, out: str, **_: object) -> dict:
    """The tutorial's text path: TextVectorization adapted on train, ids of train and test, pad_sequences."""
    import keras
    import numpy as np
    import pyarrow.parquet as pq
    import tensorflow as tf

    def standardize(text):  # the tutorial's custom_standardization
        lowered = tf.strings.lower(text)
        stripped = tf.strings.regex_replace(lowered, "<br />", " ")
        return tf.strings.regex_replace(stripped, r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]", "")

    texts = {
        s: pq.read_table(Path(raw) / f"{s}.parquet").column("text").to_pylist() for s in ("train", "test")
    }
    vectorize = keras.layers.TextVectorization(max_tokens=VOCAB, standardize=standardize, ragged=True)
    vectorize.adapt(tf.data.Dataset.from_tensor_slices(texts["train"]).batch(1024))
    Path(out).mkdir(parents=True, exist_ok=True)
    for split, rows in texts.items():
        ids = [row for i in range(0, len(rows), 1024) for row in vectorize(rows[i : i + 1024]).to_list()]
        np.save(Path(out) / f"{split}.npy", keras.utils.pad_sequences(ids, maxlen=MAX_LEN))
    return {"vocab": vectorize.vocabulary_size()}


def pre_padded(ids, lengths):
    """Post-padded rows [n, T] rotated so that the real tokens come last (what pad_sequences gives)."""
    import numpy as np

    width = ids.shape[1]
    shift = (np.arange(width)[None, :] - (width - lengths.astype(np.int64))[:, None]) % width
    return np.take_along_axis(np.asarray(ids), shift, axis=1)


def summarise(times: list[tuple[float, float]], rows: list[int], widths: list[int], warmup: int) -> dict:
    """Medians over the batches after the warm-up of sequences/s and timesteps/s, per wall second and per
    CPU second of the process (`times`: (wall, CPU) seconds per batch), and the whole-epoch rate."""
    kept = list(zip(times, rows, widths, strict=True))[warmup:]
    return {
        "batches": len(kept),
        "seq_per_s": statistics.median(r / wall for (wall, _), r, _ in kept),
        "steps_per_s": statistics.median(r * w / wall for (wall, _), r, w in kept),
        "cpu_seq_per_s": statistics.median(r / cpu for (_, cpu), r, _ in kept),
        "cpu_steps_per_s": statistics.median(r * w / cpu for (_, cpu), r, w in kept),
        "mean_width": statistics.mean(w for _, _, w in kept),
        "epoch_seq_per_s": sum(r for _, r, _ in kept) / sum(wall for (wall, _), _, _ in kept),
    }


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(last: tuple[float, float]) -> tuple[float, float]:
    now = clock()
    return now[0] - last[0], now[1] - last[1]


def keras_train(encoded: str, threads: int, epochs: int, batches: int | None, warmup: int, seed: int) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    keras.utils.set_random_seed(seed)
    split = {
        s: {n: np.load(Path(encoded) / s / f"{n}.npy") for n in ("ids", "lengths", "labels")}
        for s in ("train", "test")
    }
    x = {s: pre_padded(a["ids"], a["lengths"]) for s, a in split.items()}
    y = {s: a["labels"].astype("float32") for s, a in split.items()}
    vocab = int(max(x["train"].max(), x["test"].max())) + 1
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((MAX_LEN,), dtype="int32"),
            layers.Embedding(max(vocab, VOCAB), SIZE),
            layers.Bidirectional(layers.LSTM(SIZE)),
            layers.Dropout(0.3),
            layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    times: list[tuple[float, float]] = []
    rows: list[int] = []
    n = len(y["train"])

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):  # noqa: ANN001
            self.last, self.batch = clock(), 0

        def on_train_batch_end(self, batch, logs=None):  # noqa: ANN001
            times.append(since(self.last))
            rows.append(min(BATCH, n - self.batch * BATCH))
            self.last, self.batch = clock(), self.batch + 1

    start = time.perf_counter()
    model.fit(
        x["train"], y["train"], batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0,
        steps_per_epoch=batches, callbacks=[Timer()],
    )  # fmt: skip
    fit_s = time.perf_counter() - start
    _, acc = model.evaluate(x["test"], y["test"], batch_size=512, verbose=0)
    return {**summarise(times, rows, [MAX_LEN] * len(times), warmup), "acc": acc, "fit_s": fit_s}


def rnnlab_train(
    encoded: str, threads: int, epochs: int, batches: int | None, warmup: int, seed: int
) -> dict:
    import lightning as L
    from hydra import compose, initialize_config_dir
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from rnnlab.config import model_config, section
    from rnnlab.tasks import task_module
    from rnnlab.training import build_callbacks, build_trainer, set_threads

    overrides = [
        "model=bilstm", f"model.embedding_dim={SIZE}", f"model.hidden_size={SIZE}", f"seed={seed}",
        f"data.loader.batch_size={BATCH}", f"paths.encoded_dir={encoded}", "optim.scheduler=none",
        f"trainer.max_epochs={epochs}", "trainer.limit_val_batches=0", "trainer.enable_progress_bar=false",
        f"trainer.limit_train_batches={batches or 1.0}", "trainer.accelerator=cpu",
    ]  # fmt: skip
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides)
    set_threads(threads)
    L.seed_everything(seed, workers=True)
    task = task_module(cfg)
    data = task.datamodule(cfg)
    model = task.build_model(cfg, model_config(cfg), data).model
    times: list[tuple[float, float]] = []
    rows: list[int] = []
    widths: list[int] = []

    class Timer(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:  # noqa: ANN001
            self.last = clock()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            times.append(since(self.last))
            rows.append(len(batch["labels"]))
            widths.append(batch["ids"].shape[1])
            self.last = clock()

    with tempfile.TemporaryDirectory(prefix="bench_keras.") as tmp:
        kept = build_callbacks(Path(tmp), cfg.task.monitor, cfg.task.mode, 0, Path(tmp))
        callbacks = [c for c in kept if not isinstance(c, ModelCheckpoint)] + [Timer()]
        trainer_cfg = {**section(cfg, "trainer"), "enable_checkpointing": False, "num_sanity_val_steps": 0}
        trainer = build_trainer(trainer_cfg, callbacks, CSVLogger(tmp, name="bench"))
        start = time.perf_counter()
        trainer.fit(model, datamodule=data)
        fit_s = time.perf_counter() - start
        acc = trainer.test(model, datamodule=data, verbose=False)[0]["test/acc"]
    return {**summarise(times, rows, widths, warmup), "acc": acc, "fit_s": fit_s}


WORKERS = {"keras-data": keras_data, "keras-train": keras_train, "rnnlab-train": rnnlab_train}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--imdb", type=Path, help="IMDB archive or aclImdb/ folder (the download stage's source)"
    )
    parser.add_argument("--encoded", type=Path, help="train on these encoded arrays (default: the run's own)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batches", type=int, help="training batches per epoch (default: all)")
    parser.add_argument("--warmup", type=int, default=5, help="first batches left out of the medians")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="both sides")
    parser.add_argument("--data-repeats", type=int, default=3, help="rounds of the data stages (median)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: data, train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.worker:
        return argparse.Namespace(worker=args.worker, kwargs=json.loads(rest[0]))
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
            f"\ntraining ({args.epochs} epoch(s), batch {BATCH}; medians over batches: "
            f"keras {k['batches']}, rnnlab {r['batches']})"
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
    if args.worker:
        print(json.dumps(WORKERS[args.worker](**args.kwargs)))
        return 0
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
            encoded = str(args.encoded or work / "encoded_dir")
            run = {"encoded": encoded, "epochs": args.epochs, "batches": args.batches}
            run.update(warmup=args.warmup, seed=args.seed)
            figures["train"] = {}
            for side in ("keras", "rnnlab"):
                figures["train"][side] = run_worker(f"{side}-train", args.threads, **run)
                print(f"  trained {side}: {figures['train'][side]['seq_per_s']:.1f} seq/s", flush=True)
    figures["versions"] = run_worker("versions", 1)["versions"]
    report(args, (start_load, os.getloadavg()[0]), figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return 0


def versions(**_: object) -> dict:
    import lightning
    import tensorflow as tf
    import torch

    return {
        "versions": f"torch {torch.__version__}, lightning {lightning.__version__}, "
        f"tensorflow {tf.__version__}"
    }


WORKERS["versions"] = versions

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import cpu_model

    sys.exit(main())
