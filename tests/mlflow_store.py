"""An empty MLflow SQLite store for a test, copied from one made once per test process: creating a store runs
MLflow's schema migrations (~7 s of a stage process on the loaded 2-core CI machine), opening a copy ~1 s.
For the tests about something else (pipelines, stages): a test about creating the store makes its own."""

from __future__ import annotations

import functools
import shutil
import sqlite3
import tempfile
from pathlib import Path

DEFAULT_EXPERIMENT = "0"  # the experiment MLflow creates with the store (artifacts: <cwd>/mlruns/0)


@functools.cache
def template() -> tempfile.TemporaryDirectory:
    """A folder holding a store MLflow created (`mlflow.db`), removed when the test process ends."""
    import mlflow

    folder = tempfile.TemporaryDirectory(prefix="mlflow-template-")
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder.name}/mlflow.db").search_experiments()
    return folder


def fresh_store(path: Path) -> str:
    """Put an empty store at `path` (its Default experiment's artifacts in `mlruns/0` beside it, where a stage
    run in that folder would have put them); its tracking URI."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(template().name) / "mlflow.db", path)
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
            (str(path.parent / "mlruns" / DEFAULT_EXPERIMENT), DEFAULT_EXPERIMENT),
        )
    db.close()
    return f"sqlite:///{path}"
