"""The best checkpoint of a training run as an MLflow model, so that every run has its model.

A pyfunc around the Lightning checkpoint itself (no `pt2` export: that fixes the sequence length of an RNN):
loaded with its LightningModule class; its input is the model's own input tensors as a batch holds them
(`ids` and `lengths` for a classifier), every axis variable; its output is the module's forward output
(class logits, forecasts, next-character logits). Logged at the step of the checkpoint's epoch, so the model
page shows the metrics of the epoch it was saved at.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import lightning as L
import mlflow
import numpy as np
import torch
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import Schema, TensorSpec

import rnnlab

TARGET_KEYS = ("labels", "targets")  # batch entries that are answers, not inputs
EXAMPLE_ROWS = 2
REQUIREMENTS = ("torch", "lightning", "numpy", "pandas", "omegaconf")


def predictor(module: L.LightningModule) -> Callable[..., Any]:
    """The module's forward; a language model has none: its `step` (logits, state)."""
    return module.step if type(module).forward is L.LightningModule.forward else module


def module_outputs(module: L.LightningModule, inputs: list[torch.Tensor]) -> torch.Tensor:
    """What the model predicts for `inputs` (positional, as its forward/step takes them)."""
    out = predictor(module)(*inputs)
    return out[0] if isinstance(out, tuple) else out


def input_example(module: L.LightningModule, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The first rows of a batch as the model's required arguments, by name (`ids`, `lengths`); an argument
    the batch names otherwise takes its next input entry (a language model's `inputs` are its `ids`)."""
    call = predictor(module)
    call = call.forward if isinstance(call, torch.nn.Module) else call
    names = [p.name for p in inspect.signature(call).parameters.values() if p.default is p.empty]
    entries = iter([v for k, v in batch.items() if k not in TARGET_KEYS and k not in names])
    return {
        name: (batch[name] if name in batch else next(entries))[:EXAMPLE_ROWS].cpu().numpy() for name in names
    }


def signature(example: dict[str, np.ndarray], output: np.ndarray) -> ModelSignature:
    """Tensor specs with every axis variable (-1): batch size and sequence length are free."""
    inputs = Schema([TensorSpec(a.dtype, (-1,) * a.ndim, name) for name, a in example.items()])
    return ModelSignature(inputs=inputs, outputs=Schema([TensorSpec(output.dtype, (-1,) * output.ndim)]))


def log_checkpoint_model(
    run_id: str,
    name: str,
    checkpoint: Path,
    module: L.LightningModule,
    batch: dict[str, torch.Tensor],
    step: int,
) -> ModelInfo:
    """Log `checkpoint` as pyfunc model `name` of run `run_id` at `step` (uses the process's tracking URI)."""
    example = input_example(module, batch)
    module.eval()
    with torch.no_grad():
        tensors = [torch.as_tensor(a, device=module.device) for a in example.values()]
        output = module_outputs(module, tensors).cpu().numpy()
    config = {"module": f"{type(module).__module__}.{type(module).__name__}", "inputs": list(example)}
    with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
        # CheckpointModel.predict has no type hints on purpose: MLflow would convert inputs by them
        warnings.filterwarnings("ignore", "Add type hints to the `predict` method", UserWarning)
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(__file__).with_name("checkpoint_pyfunc.py")),  # model from code
            artifacts={"checkpoint": str(checkpoint)},
            model_config=config,
            code_paths=[str(Path(rnnlab.__file__).parent)],
            pip_requirements=[f"{package}=={version(package)}" for package in REQUIREMENTS],
            signature=signature(example, output),
            input_example=example,
            step=step,
        )
