"""Train one recurrent model (`model=<rnn|lstm|gru|bilstm>`) for the task (`task=<imdb|forecast|charlm>`);
log it to MLflow.

    python pipelines/train.py model=gru trainer.max_epochs=3
    python pipelines/train.py task=charlm model=lstm
    python pipelines/train.py model=gru ckpt_path=last trainer.max_epochs=6   # resume, same MLflow run
    python pipelines/train.py -m model=rnn,lstm,gru,bilstm   # one MLflow parent run, four children
DVC runs it as `train@<model>` on the task's params.yaml (dvc.yaml, pipelines/<task>/dvc.yaml): only that
stage writes the DVC outputs; other runs keep theirs in runs/<task>/<cell>/<run>/ (rnnlab.run_dirs).
"""

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig, OmegaConf

from rnnlab import history, run_dirs, run_logger, tracking
from rnnlab.callbacks import FitClock
from rnnlab.config import model_config, project_root, section
from rnnlab.io import atomic_file, write_json
from rnnlab.models.summary import model_summary
from rnnlab.resume import log_once
from rnnlab.stage import entry_point, summary
from rnnlab.tasks import Built, task_module
from rnnlab.training import (
    build_callbacks,
    build_trainer,
    checkpoint_run_id,
    configure_cpu,
    epochs_completed,
    read_checkpoint,
)


@entry_point(trainer=True)
def main(cfg: DictConfig) -> float:
    root = project_root()
    configure_cpu(cfg.train.threads, cfg.train.retain_freed_memory)
    L.seed_everything(cfg.seed, workers=True)
    task = task_module(cfg)
    model_cfg = model_config(cfg)
    data = task.datamodule(cfg)
    built = task.build_model(cfg, model_cfg, data)
    model = built.model
    dirs = run_dirs.run_dirs(cfg, model_cfg["name"])
    resume = dirs.resume
    resumed_from = read_checkpoint(resume)
    digest = tracking.data_fingerprint(task.data_dir(cfg))
    uri = tracking.tracking_uri(cfg.logger.tracking_uri, root)
    logger = run_logger.make_logger(
        task=cfg.logger.experiment_name,
        model=model_cfg["name"],
        uri=uri,
        root=root,
        tags={
            "git_commit": tracking.git_commit(root),
            "data_hash": digest,
            "model": model_cfg["name"],
            "cell": model_cfg["cell"],
        },
        run_id=checkpoint_run_id(resumed_from),
    )
    if resume:
        log_once(logger)
    callbacks = build_callbacks(
        dirs.checkpoints,
        cfg.task.monitor,
        cfg.task.mode,
        cfg.train.early_stopping_patience,
        dirs.diagnostics,
        cfg.train.checkpoint_every_n_steps,
    )
    callbacks += task.callbacks(cfg, model_cfg, data, dirs.diagnostics)
    trainer = build_trainer(section(cfg, "trainer"), callbacks, logger)
    logger.follow(trainer)
    record_run_setup(logger, cfg, model_cfg, built, data, trainer, digest, resumed=resume is not None)
    clock = FitClock.since(resumed_from)
    sampling = (cfg.logger.system_metrics, cfg.logger.system_metrics_s)
    with run_logger.system_metrics(logger.run_id, uri, *sampling):
        trainer.fit(model, datamodule=data, ckpt_path=resume)
    train_seconds = clock.state_dict()["seconds"]  # a resumed run: all its processes' fitting
    # trainer.test() below resets callback_metrics: read the training throughput now.
    train_seq_per_s = float(trainer.callback_metrics.get("train/seq_per_s", torch.nan))
    best_path = Path(trainer.checkpoint_callback.best_model_path)
    best_step, best = run_logger.checkpoint_facts(best_path, cfg.task.monitor)
    logger.pin(best_step)  # test and final metrics: at the best epoch's step
    # The fit time (a resumed run's summed over its processes), as in the training report.
    logger.log_metrics({"train_seconds": round(train_seconds, 1)})
    test = trainer.test(model, datamodule=data, ckpt_path="best", verbose=False)[0] if task.HAS_TEST else {}
    if trainer.is_global_zero:
        report = {
            "model": model_cfg["name"],
            "run_id": logger.run_id,
            "params": sum(p.numel() for p in model.parameters()),
            "epochs": epochs_completed(dirs.checkpoints),
            "train_seconds": round(train_seconds, 1),
            best_key(cfg): best,
            "train_seq_per_s": train_seq_per_s,
            **{k: float(v) for k, v in test.items()},
            **built.links,
        }
        write_outputs(cfg, model, logger, task.artifacts(cfg), report, dirs.work)
        description = (
            run_logger.describe(model_cfg, cfg.task.monitor, best, logger.pinned, report) + built.note
        )
        name = f"{cfg.logger.experiment_name}-{model_cfg['name']}"
        run_logger.log_run_model(logger, name, model, data, best_path, description)
        run_dirs.publish(dirs)
    return best


def best_key(cfg: DictConfig) -> str:
    """The report's key for the best monitored value, e.g. `val_acc_best` (MLflow: `val/acc_best`)."""
    return f"{cfg.task.monitor.replace('/', '_')}_best"


def record_run_setup(
    logger: MLFlowLogger,
    cfg: DictConfig,
    model_cfg: dict,
    built: Built,
    data: L.LightningDataModule,
    trainer: L.Trainer,
    digest: str,
    resumed: bool,
) -> None:
    """Params (the trained config and model facts), datasets, device tags and the tags of the runs it starts
    from, before training starts."""
    facts = {**built.params, **built.links, "param_count": sum(p.numel() for p in built.model.parameters())}
    run_logger.record_setup(logger, cfg, model_cfg, facts, data, digest, resumed)
    run = logger.experiment
    run.set_tag(logger.run_id, "device", run_logger.device_name(trainer.strategy.root_device))
    run.set_tag(logger.run_id, "world_size", str(trainer.world_size))
    for key, run_id in built.links.items():
        run.set_tag(logger.run_id, key, run_id)
    if resumed:
        run.update_run(logger.run_id, status="RUNNING")
    if built.metrics:
        logger.log_metrics(built.metrics)


def write_outputs(
    cfg: DictConfig,
    model: L.LightningModule,
    logger: MLFlowLogger,
    artifacts: list[Path],
    report: dict,
    out_dir: Path,
) -> None:
    """The run folder's summary and report, and the run's artifacts; rank 0 only."""
    text = model_summary(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_file(out_dir / "summary.txt", encoding="utf-8") as handle:
        handle.write(text + "\n")
    write_json(out_dir / "report.json", report)
    key = best_key(cfg)
    logger.log_metrics({f"{cfg.task.monitor}_best": report[key]})
    run = logger.experiment
    run.log_text(logger.run_id, text, "model_summary.txt")
    run.log_text(logger.run_id, OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
    for path in artifacts:
        run.log_artifact(logger.run_id, str(path))
    history.write_run_views(run, logger.run_id, out_dir, cfg.task.monitor, report["model"])
    tests = {k.replace("/", "_"): round(v, 4) for k, v in report.items() if k.startswith("test/")}
    summary("train", **{k: report[k] for k in ("model", "params", "epochs", key)}, **tests)


if __name__ == "__main__":
    main()
