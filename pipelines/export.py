"""Export one trained model (`model=<rnn|lstm|gru|bilstm>`) in the files its task deploys (`Task.export`).

    python pipelines/export.py model=gru
DVC runs it as `export@<model>` (`+model_key=<model>`) and gets `models/<task>/<model>/export/`; for
classification: `model.onnx`, `model.pt` (TorchScript) and `export.json` (interface, labels, parity figures).
A task that does not deploy its models refuses, naming what it offers instead.
"""

import shutil

from omegaconf import DictConfig

from rnnlab.config import model_config, resolve_path
from rnnlab.io import atomic_dir
from rnnlab.stage import entry_point, summary
from rnnlab.tasks import task_module


@entry_point
def main(cfg: DictConfig) -> None:
    task = task_module(cfg)
    name = model_config(cfg)["name"]
    target = resolve_path(cfg.paths.models_dir) / name / "export"
    if not task.DEPLOYS:
        task.export(cfg, name, target)  # refuses, naming what the task offers instead; writes nothing
    # An export of an older checkpoint must not survive a failed run looking valid.
    shutil.rmtree(target, ignore_errors=True)
    with atomic_dir(target) as out:
        facts = task.export(cfg, name, out)
    summary("export", model=name, **facts)


if __name__ == "__main__":
    main()
