"""The model-from-code file MLflow stores with a training run's model (rnnlab.tracking.logged_model): it names
the pyfunc class instead of pickling an instance."""

import mlflow

from rnnlab.tracking.logged_model import CheckpointModel

mlflow.models.set_model(CheckpointModel())
