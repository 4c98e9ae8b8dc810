"""The measuring halves of bench/bench_keras.py, each run by it in a fresh process
(`python bench/keras_workers.py <kind> <json kwargs>`, the answer as JSON on the last stdout line): the Keras
data script, the two training sides and the versions line. Only the Keras workers import TensorFlow."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LEN, VOCAB, SIZE, BATCH = 400, 30000, 64, 128
PRECISIONS = {"32": "32-true", "bf16": "bf16-mixed"}  # --precision -> rnnlab's trainer.precision


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


def keras_train(
    encoded: str,
    threads: int,
    epochs: int,
    batches: int | None,
    warmup: int,
    seed: int,
    precision: str,
    **_: object,
) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    if precision == "bf16":  # Keras's mixed precision guide: the output layer stays float32
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
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
            layers.Dense(1, activation="sigmoid", dtype="float32"),
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
    encoded: str,
    prepared: str,
    threads: int,
    epochs: int,
    batches: int | None,
    warmup: int,
    seed: int,
    precision: str,
) -> dict:
    import lightning as L
    from hydra import compose, initialize_config_dir
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from rnnlab.config import model_config, section
    from rnnlab.tasks import task_module
    from rnnlab.training import build_callbacks, build_trainer, configure_cpu

    overrides = [
        "model=bilstm", f"model.embedding_dim={SIZE}", f"model.hidden_size={SIZE}", f"seed={seed}",
        f"data.loader.batch_size={BATCH}", f"paths.encoded_dir={encoded}", f"paths.prepared_dir={prepared}",
        "optim.scheduler=none",
        f"trainer.max_epochs={epochs}", "trainer.limit_val_batches=0", "trainer.enable_progress_bar=false",
        f"trainer.limit_train_batches={batches or 1.0}", "trainer.accelerator=cpu",
        f"trainer.precision={PRECISIONS[precision]}",
        "train.adversarial=none",  # the tutorial's plain objective
        "model.init_from=none",  # the tutorial's randomly initialised embedding (the IMDB default: word2vec)
    ]  # fmt: skip
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides)
    configure_cpu(threads, retain_freed_memory=True)  # train.py's default
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


def versions(**_: object) -> dict:
    import lightning
    import tensorflow as tf
    import torch

    return {
        "versions": f"torch {torch.__version__}, lightning {lightning.__version__}, "
        f"tensorflow {tf.__version__}"
    }


WORKERS = {
    "keras-data": keras_data,
    "keras-train": keras_train,
    "rnnlab-train": rnnlab_train,
    "versions": versions,
}

if __name__ == "__main__":
    print(json.dumps(WORKERS[sys.argv[1]](**json.loads(sys.argv[2]))))
