"""Train one recurrent classifier (`model=<rnn|lstm|gru|bilstm>`) on the encoded data; log it to MLflow.

    python pipelines/train.py model=gru trainer.max_epochs=3
    python pipelines/train.py -m model=rnn,lstm,gru,bilstm        # one MLflow parent run, four children
DVC runs it as `train@<model>` on params.yaml (see dvc.yaml).
"""

import time

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from rnnlab import tracking
from rnnlab.config import project_root, resolve_path, section
from rnnlab.data.datamodule import SequenceDataModule
from rnnlab.io import write_json
from rnnlab.models.classifier import SequenceClassifier
from rnnlab.models.summary import model_summary
from rnnlab.stage import report_errors, summary
from rnnlab.training import build_callbacks, build_trainer

ENCODER_KEYS = (
    "cell",
    "bidirectional",
    "num_layers",
    "hidden_size",
    "embedding_dim",
    "embedding_dropout",
    "dropout",
    "pooling",
    "init",
    "forget_bias",
)


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@report_errors
def main(cfg: DictConfig) -> float:
    root = project_root()
    L.seed_everything(cfg.seed, workers=True)
    # DVC's train@<name> stages pass +model_key=<name> to train the cell stored under models.<name>.
    model_cfg = section(cfg, f"models.{cfg.model_key}" if "model_key" in cfg else "model")
    data = SequenceDataModule(
        resolve_path(cfg.paths.encoded_dir), seed=cfg.seed, **section(cfg, "data.loader")
    )
    model = SequenceClassifier(
        data.vocab_size,
        data.num_classes,
        {k: model_cfg[k] for k in ENCODER_KEYS},
        **section(cfg, "optim"),
        head_dropout=model_cfg["head_dropout"],
    )
    out_dir = resolve_path(cfg.paths.models_dir) / model_cfg["name"]
    uri = tracking.tracking_uri(cfg.logger.tracking_uri, root)
    logger = tracking.make_logger(
        task=cfg.logger.experiment_name,
        model=model_cfg["name"],
        uri=uri,
        root=root,
        tags={
            "git_commit": tracking.git_commit(root),
            "data_hash": tracking.data_fingerprint(data.encoded_dir),
            "model": model_cfg["name"],
            "cell": model_cfg["cell"],
        },
    )
    trainer = build_trainer(
        section(cfg, "trainer"),
        build_callbacks(
            out_dir / "checkpoints", cfg.train.early_stopping_patience, model_cfg["freeze_embeddings_epochs"]
        ),
        logger,
    )
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    started = time.perf_counter()
    trainer.fit(model, datamodule=data)
    train_seconds = time.perf_counter() - started
    # trainer.test() below resets callback_metrics: read the training throughput now.
    train_seq_per_s = float(trainer.callback_metrics.get("train/seq_per_s", torch.nan))
    best = trainer.checkpoint_callback.best_model_score
    test = trainer.test(model, datamodule=data, ckpt_path="best", verbose=False)[0]
    if trainer.is_global_zero:
        params = sum(p.numel() for p in model.parameters())
        report = {
            "model": model_cfg["name"],
            "run_id": logger.run_id,
            "params": params,
            "epochs": trainer.current_epoch,
            "train_seconds": round(train_seconds, 1),
            "val_acc_best": float(best) if best is not None else None,
            "train_seq_per_s": train_seq_per_s,
            **{k: float(v) for k, v in test.items()},
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "summary.txt").write_text(model_summary(model) + "\n", encoding="utf-8")
        write_json(resolve_path(cfg.paths.reports_dir) / "train" / f"{model_cfg['name']}.json", report)
        run = logger.experiment
        run.log_text(logger.run_id, model_summary(model), "model_summary.txt")
        run.log_text(logger.run_id, OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
        run.log_artifact(logger.run_id, str(resolve_path(cfg.paths.prepared_dir) / "vocab.json"))
        run.log_artifact(logger.run_id, trainer.checkpoint_callback.best_model_path, "checkpoints")
        summary(
            "train",
            **{k: report[k] for k in ("model", "params", "epochs", "val_acc_best")},
            test_acc=round(report.get("test/acc", float("nan")), 4),
        )
    return float(best) if best is not None else 0.0


if __name__ == "__main__":
    main()
