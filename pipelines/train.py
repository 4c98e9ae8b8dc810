"""Train one recurrent model (`model=<rnn|lstm|gru|bilstm>`) for the task (`task=<imdb|forecast|charlm>`);
log it to MLflow.

    python pipelines/train.py model=gru trainer.max_epochs=3
    python pipelines/train.py task=charlm model=lstm
    python pipelines/train.py model=gru ckpt_path=last trainer.max_epochs=6   # resume, same MLflow run
    python pipelines/train.py -m model=rnn,lstm,gru,bilstm   # one MLflow parent run, four children
DVC runs it as `train@<model>` on the task's params.yaml (dvc.yaml, pipelines/<task>/dvc.yaml).
"""

import time
from pathlib import Path

import hydra
import lightning as L
import torch
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig, OmegaConf

from rnnlab import history, run_logger, tracking
from rnnlab.config import model_config, project_root, resolve_path, section
from rnnlab.io import atomic_file, write_json
from rnnlab.models.summary import model_summary
from rnnlab.stage import report_errors, summary
from rnnlab.tasks import Built, task_module
from rnnlab.training import (
    build_callbacks,
    build_trainer,
    checkpoint_run_id,
    epochs_completed,
    resume_checkpoint,
)


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@report_errors
def main(cfg: DictConfig) -> float:
    root = project_root()
    L.seed_everything(cfg.seed, workers=True)
    task = task_module(cfg)
    model_cfg = model_config(cfg)
    data = task.datamodule(cfg)
    built = task.build_model(cfg, model_cfg, data)
    model = built.model
    out_dir = resolve_path(cfg.paths.models_dir) / model_cfg["name"]
    resume = resume_checkpoint(cfg.ckpt_path, out_dir / "checkpoints")
    logger = run_logger.make_logger(
        task=cfg.logger.experiment_name,
        model=model_cfg["name"],
        uri=tracking.tracking_uri(cfg.logger.tracking_uri, root),
        root=root,
        tags={
            "git_commit": tracking.git_commit(root),
            "data_hash": tracking.data_fingerprint(task.data_dir(cfg)),
            "model": model_cfg["name"],
            "cell": model_cfg["cell"],
        },
        run_id=checkpoint_run_id(resume) if resume else None,
    )
    diagnostics_dir = resolve_path(cfg.paths.reports_dir) / "diagnostics" / model_cfg["name"]
    callbacks = build_callbacks(
        out_dir / "checkpoints", cfg.task.monitor, cfg.task.mode, cfg.train.early_stopping_patience,
        diagnostics_dir,
    )
    callbacks += task.callbacks(cfg, model_cfg, data, diagnostics_dir)
    trainer = build_trainer(section(cfg, "trainer"), callbacks, logger)
    record_run_setup(logger, cfg, built, trainer, resumed=resume is not None)
    started = time.perf_counter()
    trainer.fit(model, datamodule=data, ckpt_path=resume)
    train_seconds = time.perf_counter() - started
    # trainer.test() below resets callback_metrics: read the training throughput now.
    train_seq_per_s = float(trainer.callback_metrics.get("train/seq_per_s", torch.nan))
    best = trainer.checkpoint_callback.best_model_score
    best = float(best) if best is not None else float("nan")
    test = trainer.test(model, datamodule=data, ckpt_path="best", verbose=False)[0] if task.HAS_TEST else {}
    if trainer.is_global_zero:
        report = {
            "model": model_cfg["name"],
            "run_id": logger.run_id,
            "params": sum(p.numel() for p in model.parameters()),
            "epochs": epochs_completed(out_dir / "checkpoints"),
            "train_seconds": round(train_seconds, 1),
            best_key(cfg): best,
            "train_seq_per_s": train_seq_per_s,
            **{k: float(v) for k, v in test.items()},
        }
        artifacts = [*task.artifacts(cfg), Path(trainer.checkpoint_callback.best_model_path)]
        write_outputs(cfg, model, logger, artifacts, report, out_dir)
    return best


def best_key(cfg: DictConfig) -> str:
    """The report's key for the best monitored value, e.g. `val_acc_best` (MLflow: `val/acc_best`)."""
    return f"{cfg.task.monitor.replace('/', '_')}_best"


def record_run_setup(
    logger: MLFlowLogger, cfg: DictConfig, built: Built, trainer: L.Trainer, resumed: bool
) -> None:
    """Params (the resolved config and model facts) and the device tags, before training starts."""
    facts = {**built.params, "param_count": sum(p.numel() for p in built.model.parameters())}
    run_logger.log_params(logger, {**OmegaConf.to_container(cfg, resolve=True), **facts}, resumed)
    run = logger.experiment
    run.set_tag(logger.run_id, "device", run_logger.device_name(trainer.strategy.root_device))
    run.set_tag(logger.run_id, "world_size", str(trainer.world_size))
    if resumed:
        run.update_run(logger.run_id, status="RUNNING")
    if built.metrics:
        logger.log_metrics(built.metrics)


def write_outputs(
    cfg: DictConfig, model: L.LightningModule, logger: MLFlowLogger, artifacts: list[Path], report: dict,
    out_dir: Path,
) -> None:
    """The stage's outs (summary, report) and the run's artifacts; rank 0 only."""
    text = model_summary(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_file(out_dir / "summary.txt", encoding="utf-8") as handle:
        handle.write(text + "\n")
    write_json(resolve_path(cfg.paths.reports_dir) / "train" / f"{report['model']}.json", report)
    key = best_key(cfg)
    logger.log_metrics({f"{cfg.task.monitor}_best": report[key]})
    run = logger.experiment
    run.log_text(logger.run_id, text, "model_summary.txt")
    run.log_text(logger.run_id, OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
    for path in artifacts:
        run.log_artifact(logger.run_id, str(path), "checkpoints" if path.suffix == ".ckpt" else None)
    history.write_run_views(
        run, logger.run_id, resolve_path(cfg.paths.reports_dir), report["model"], cfg.task.monitor
    )
    tests = {k.replace("/", "_"): round(v, 4) for k, v in report.items() if k.startswith("test/")}
    summary("train", **{k: report[k] for k in ("model", "params", "epochs", key)}, **tests)


if __name__ == "__main__":
    main()
