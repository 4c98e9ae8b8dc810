"""The model-from-code file MLflow stores with a training run's model (rnnlab.tracking.logged_model): the
pyfunc class, and the instance MLflow loads."""

import importlib

import mlflow
import numpy as np
import torch

from rnnlab.tracking.logged_model import module_outputs

# module paths of models logged before the class moved, and where the class lives now
MOVED = {"rnnlab.models.classifier": "rnnlab.tasks.classification.classifier"}


class CheckpointModel(mlflow.pyfunc.PythonModel):
    """Predict with a Lightning checkpoint: input {name: array} in the order of `model_config["inputs"]`."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        path, _, name = context.model_config["module"].rpartition(".")
        module_class = getattr(importlib.import_module(MOVED.get(path, path)), name)
        self.module = module_class.load_from_checkpoint(context.artifacts["checkpoint"], map_location="cpu")
        self.module.eval()
        self.inputs = list(context.model_config["inputs"])

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would check inputs by them
        """{input name: array} -> the module's output as a numpy array."""
        tensors = [torch.as_tensor(np.asarray(model_input[name])) for name in self.inputs]
        with torch.no_grad():
            return module_outputs(self.module, tensors).numpy()


mlflow.models.set_model(CheckpointModel())
