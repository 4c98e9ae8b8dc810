"""The stages that build no trainer import neither torch nor Lightning (issue 15: together they took ~20 s
of each data stage's process here): rnnlab.validation takes the allowed values from torch-free modules
(rnnlab.models.choices, rnnlab.diagnostics.choices) and checks Lightning's registries only for a stage
declared `@entry_point(trainer=True)`; the task packages import their models and datamodules inside the
functions that use them. pretrain_lm builds a trainer only for a cell with init_from lm
(`@entry_point(trainer=trains)`), so its other cells' notes take seconds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "lightning", "pytorch_lightning", "lightning_fabric")
# pretrain_lm: its script imports torch and Lightning only to train, for a cell with init_from lm; any other
# cell's note (the smoke pipeline's four) is validated without Lightning, as below.
DATA_STAGES = ("download", "prepare", "encode", "compare", "pretrain_lm")

# Loads the data stages' scripts, then composes and validates, as their entry point does before Hydra runs,
# every shipped smoke experiment (one per task kind); prints the heavy modules then imported.
PROBE = """
import importlib.util, sys
from pathlib import Path
from hydra import compose, initialize_config_dir
from rnnlab.tasks import KINDS, task_of
from rnnlab.validation import validate
root, stages, heavy = Path(sys.argv[1]), sys.argv[2].split(","), tuple(sys.argv[3].split(","))
for stage in stages:
    spec = importlib.util.spec_from_file_location(stage, root / "pipelines" / f"{stage}.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
kinds = set()
with initialize_config_dir(str(root / "conf"), version_base="1.3"):
    for path in sorted((root / "conf" / "experiment").glob("smoke*.yaml")):
        cfg = compose("config", [f"experiment={path.stem}"])
        validate(cfg, lightning=False)
        task_of(cfg.task.kind).RULES
        kinds.add(cfg.task.kind)
assert kinds == set(KINDS), kinds
print(" ".join(sorted(name for name in sys.modules if name.split(".")[0] in heavy)) or "none")
"""


def test_data_stages_and_validation_import_neither_torch_nor_lightning():
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT), ",".join(DATA_STAGES), ",".join(HEAVY)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "none", f"imported: {done.stdout.strip()[:500]}"
