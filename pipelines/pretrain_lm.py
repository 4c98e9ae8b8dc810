"""DVC stage `pretrain_lm@<cell>` (imdb): the word language model a cell with `init_from: lm` starts from
(rnnlab.pretraining.word_lm: the cell's own embedding and recurrent layers, truncated BPTT, an adaptive
softmax), learnt from the training split and the unlabelled reviews and monitored on the validation split
(rnnlab.pretraining.lm_data: never a test review); an MLflow run of its own, which the classifier run starting
from it names. For a cell whose init_from is not lm it trains nothing and says so (report and folder).

    python pipelines/pretrain_lm.py model=lstm model.init_from=lm
    python pipelines/pretrain_lm.py model=lstm model.init_from=lm ckpt_path=last   # resume, same MLflow run
Trains in `<paths.runs_dir>/pretrain-lm/<cell>/` (what `ckpt_path=last` resumes); writes the best checkpoint
(by val/loss) to `<paths.pretrain_dir>/lm/<cell>/lm.ckpt` and `<reports_dir>/pretrain/lm/<cell>.json`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rnnlab.config import model_config, project_root, resolve_path, section
from rnnlab.errors import ConfigError
from rnnlab.io import atomic_dir, write_json
from rnnlab.pretraining.outputs import LM, LM_CHECKPOINT, Outputs, outputs
from rnnlab.stage import entry_point, summary

MONITOR, MODE = "val/loss", "min"
NOT_TRAINED = "not_trained.txt"  # the folder's one file for a cell that does not start from the model
OPTIM_KEYS = ("lr", "weight_decay", "scheduler")
# The trainer settings the language model shares with the classifier (dvc.yaml lists them as its params);
# epochs and batch limits are its own (pretrain.lm).
TRAINER_KEYS = (
    "accelerator",
    "devices",
    "strategy",
    "num_nodes",
    "precision",
    "gradient_clip_val",
    "gradient_clip_algorithm",
    "deterministic",
    "log_every_n_steps",
    "enable_progress_bar",
)


def trains(cfg: DictConfig) -> bool:
    """Whether the stage trains, and so builds a Lightning trainer, for this config's cell: only for
    init_from lm. Any other cell gets its note without importing torch or Lightning (seconds per cell)."""
    key = cfg.get("model_key")
    return OmegaConf.select(cfg, f"models.{key}.init_from" if key else "model.init_from") == LM


@entry_point(trainer=trains)
def main(cfg: DictConfig) -> None:
    if OmegaConf.select(cfg, f"pretrain.{LM}") is None:
        raise ConfigError(
            f"task={cfg.task.name} has no pretrain.{LM} section: pretraining is for text classification "
            "(task=imdb)"
        )
    model_cfg = model_config(cfg)
    cell, found = model_cfg["name"], outputs(cfg, LM, model_cfg["name"])
    if model_cfg["init_from"] != LM:
        why = f"models.{cell}.init_from is not {LM}: no language model trained\n"
        with atomic_dir(found.folder) as folder:  # not empty: DVC warns about an empty output folder
            (folder / NOT_TRAINED).write_text(why, encoding="utf-8")
        write_json(found.report, {"method": LM, "cell": cell, "trained": False})
        summary("pretrain_lm", cell=cell, trained=False, init_from=model_cfg["init_from"])
        return
    train(cfg, model_cfg, found)


def train(cfg: DictConfig, model_cfg: dict[str, Any], found: Outputs) -> None:
    """Train the cell's language model; write its checkpoint and report (`found`). Imports torch and
    Lightning here, not at the top, so that a cell without init_from lm never loads them."""
    import lightning as L

    from rnnlab import run_logger, tracking
    from rnnlab.callbacks import FitClock
    from rnnlab.data.vocab import Vocabulary
    from rnnlab.models.build import encoder_args
    from rnnlab.pretraining.lm_data import read_language_model_data
    from rnnlab.pretraining.stream import ReviewStreamData
    from rnnlab.pretraining.word_lm import WordLanguageModel
    from rnnlab.resume import log_once
    from rnnlab.run_dirs import resume_checkpoint
    from rnnlab.training import (
        build_callbacks,
        build_trainer,
        checkpoint_run_id,
        configure_cpu,
        epochs_completed,
        read_checkpoint,
    )

    cell, settings = model_cfg["name"], section(cfg, f"pretrain.{LM}")
    scratch = resolve_path(cfg.paths.runs_dir) / "pretrain-lm" / cell
    resume = resume_checkpoint(cfg.ckpt_path, scratch / "checkpoints" / "last.ckpt")
    resumed_from = read_checkpoint(resume)
    if resume is None:
        shutil.rmtree(scratch, ignore_errors=True)
    configure_cpu(cfg.train.threads, cfg.train.retain_freed_memory)
    L.seed_everything(cfg.seed, workers=True)
    prepared = resolve_path(cfg.paths.prepared_dir)
    vocab_size = len(Vocabulary.load(prepared / "vocab.json"))
    streams = read_language_model_data(prepared, vocab_size, cfg.seed, list(cfg.pretrain.corpus))
    data = ReviewStreamData(
        streams.train, streams.val, settings["batch_size"], settings["chunk_len"], model_cfg["bidirectional"]
    )
    model = WordLanguageModel(
        vocab_size,
        encoder_args(model_cfg),
        settings["cutoffs"],
        settings["div_value"],
        **{key: settings[key] for key in OPTIM_KEYS},
        head_dropout=model_cfg["head_dropout"],
        monitor=MONITOR,
        mode=MODE,
    )
    root = project_root()
    logger = run_logger.make_logger(
        task=cfg.logger.experiment_name,
        model=f"{LM}-{cell}",
        uri=tracking.tracking_uri(cfg.logger.tracking_uri, root),
        root=root,
        tags={"git_commit": tracking.git_commit(root), "pretrain": LM, "pretrain_cell": cell},
        run_id=checkpoint_run_id(resumed_from),
    )
    if resume:
        log_once(logger)
    texts = {**streams.corpus.texts, "val": streams.val_texts}
    params = {
        "pretrain": {LM: settings, "corpus": ",".join(cfg.pretrain.corpus)},
        "model": model_cfg,
        "seed": cfg.seed,
        "vocab_size": vocab_size,
    }
    run_logger.log_params(logger, {**params, "data": {"name": cfg.data.name}}, resumed=resume is not None)
    sizes = {"train_tokens": len(streams.train), "val_tokens": len(streams.val)}
    logger.log_metrics({f"pretrain/{key}": n for key, n in {**texts, **sizes}.items()}, step=0)
    checkpoints = scratch / "checkpoints"
    callbacks = build_callbacks(
        checkpoints,
        MONITOR,
        MODE,
        settings["early_stopping_patience"],
        scratch / "diagnostics",
        settings["checkpoint_every_n_steps"],
    )
    trainer_cfg = {key: cfg.trainer[key] for key in TRAINER_KEYS}
    limits = {f"limit_{split}_batches": settings[f"limit_{split}_batches"] for split in ("train", "val")}
    trainer = build_trainer({**trainer_cfg, **limits, "max_epochs": settings["epochs"]}, callbacks, logger)
    logger.follow(trainer)
    clock = FitClock.since(resumed_from)
    trainer.fit(model, datamodule=data, ckpt_path=resume)
    totals = clock.state_dict()  # a resumed run: all its processes' fitting
    seconds, cpu_seconds = totals["seconds"], totals["cpu_seconds"]
    if not trainer.is_global_zero:
        return
    best_path = Path(trainer.checkpoint_callback.best_model_path)
    best_epoch, best = run_logger.checkpoint_facts(best_path, MONITOR)
    logger.pin(best_epoch)
    logger.log_metrics({f"{MONITOR}_best": best})
    report = {
        "method": LM,
        "cell": cell,
        "trained": True,
        "run_id": logger.run_id,
        "experiment_id": logger.experiment_id,
        "settings": settings,
        "seed": cfg.seed,
        "vocab_size": vocab_size,
        "texts": texts,
        **sizes,
        "epochs": epochs_completed(checkpoints),
        "best_epoch": best_epoch,
        "val_loss_best": best,
        "train_seconds": round(seconds, 1),
        "train_cpu_seconds": round(cpu_seconds, 1),
    }
    described = " + ".join(f"{name} {n:,}" for name, n in streams.corpus.texts.items())
    logger.experiment.set_tag(
        logger.run_id,
        run_logger.DESCRIPTION_TAG,
        f"{cell} word language model on {described} texts (validation: {streams.val_texts:,} val texts; no "
        f"test text): best {MONITOR} {best:.4f} at epoch {best_epoch} of {report['epochs']}",
    )
    with atomic_dir(found.folder) as folder:
        shutil.copyfile(best_path, folder / LM_CHECKPOINT)
    write_json(found.report, report)
    shutil.rmtree(scratch)
    summary(
        "pretrain_lm",
        cell=cell,
        **texts,
        epochs=report["epochs"],
        val_loss=f"{best:.4f}",
        seconds=report["train_seconds"],
    )


if __name__ == "__main__":
    main()
