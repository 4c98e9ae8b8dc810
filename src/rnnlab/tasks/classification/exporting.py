"""The contract's `export` for classification: ONNX and TorchScript files of the checkpoint, parity-checked
(onnx_export, imported when called: the data stages need no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rnnlab.config import resolve_path
from rnnlab.errors import LayoutError
from rnnlab.io import read_json


def export(cfg: DictConfig, name: str, folder: Path) -> dict[str, Any]:
    """`model.onnx`, `model.pt` (TorchScript) and `export.json` (interface, labels, parity figures)."""
    from rnnlab.tasks.classification.onnx_export import export_model, load_classifier

    model = load_classifier(resolve_path(cfg.paths.models_dir) / name / "checkpoints" / "best.ckpt", name)
    meta_path = resolve_path(cfg.paths.encoded_dir) / "meta.json"
    if not meta_path.is_file():
        raise LayoutError(f"{meta_path} is missing: run the encode stage first (dvc repro encode)")
    info = export_model(model, folder, read_json(meta_path))
    diffs = info["max_abs_diff"]
    return {
        "opset": info["opset"],
        "onnx_diff": f"{diffs['onnx']:.1e}",
        "torchscript_diff": f"{diffs['torchscript']:.1e}",
        "seq_lens": ",".join(map(str, info["seq_lens"])),
    }
