"""The data a run read, as MLflow datasets (the runs table's Datasets column): one per split, named
`<data.name>-<split>`, with the data fingerprint as digest, the source actually read, rows and classes."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf

from rnnlab.config import resolve_path

CONTEXT_TAG = "mlflow.data.context"  # the tag MLflow's UI shows as the dataset's role (train, val, test)
# What a tracking store says when two runs insert the same dataset (experiment, name, digest) at once:
# PostgreSQL, SQLite, MySQL.
DUPLICATE_DATASET = ("UniqueViolation", "UNIQUE constraint failed", "Duplicate entry")
ATTEMPTS = 5


def source_read(cfg: DictConfig) -> str | None:
    """Where the download stage actually read the data (`<raw_dir>/source.json`: a local mirror when one was
    used), else the configured `data.source.uri`."""
    info_path = resolve_path(cfg.paths.raw_dir) / "source.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        found = info.get("uri") or info.get("file")
        if found:
            return str(found)
    configured = OmegaConf.select(cfg, "data.source.uri", default=None)
    return None if configured is None else str(configured)


def split_profiles(data: Any) -> dict[str, dict[str, Any]]:
    """{split: {"rows": n, "class_counts": {label: n}}} of a task's datamodule: the encoded splits of a text
    classifier (labelled), the windows or BPTT batches of the other tasks (`datasets`, rows only)."""
    if hasattr(data, "splits"):  # rnnlab.tasks.classification.sequence_data.SequenceDataModule
        data.setup()
        names = data.meta.get("label_names") or [str(i) for i in range(data.num_classes)]
        profiles = {}
        for split, encoded in data.splits.items():
            counts = np.bincount(np.asarray(encoded.labels), minlength=len(names))
            profiles[split] = {
                "rows": int(len(encoded.labels)),
                "class_counts": {str(n): int(c) for n, c in zip(names, counts, strict=True)},
            }
        return profiles
    data.setup("fit")
    return {split: {"rows": int(len(dataset))} for split, dataset in data.datasets.items()}


def log_datasets(
    client: MlflowClient,
    run_id: str,
    name: str,
    digest: str,
    source: str | None,
    profiles: dict[str, dict[str, Any]],
) -> None:
    """Log one MLflow dataset per split to the run (context tag = the split)."""
    source_type = "http" if source and source.startswith(("http://", "https://")) else "local"
    inputs = []
    for split, profile in profiles.items():
        dataset = Dataset(
            name=f"{name}-{split}",
            digest=digest,
            source_type=source_type,
            source=json.dumps({"uri": source or "unknown"}),
            profile=json.dumps(profile),
        )
        inputs.append(DatasetInput(dataset, tags=[InputTag(CONTEXT_TAG, split)]))
    # The store looks a dataset up, then inserts it: two runs of one experiment starting at once (a sweep's
    # parallel jobs) can both miss it, and the second insert fails. Logging again finds the first's row.
    for attempt in range(1, ATTEMPTS + 1):
        try:
            client.log_inputs(run_id, datasets=inputs)
            return
        except MlflowException as error:
            if attempt == ATTEMPTS or not any(marker in str(error) for marker in DUPLICATE_DATASET):
                raise
            time.sleep(0.2 * attempt)
