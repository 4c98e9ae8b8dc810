"""Export one trained classifier (`model=<rnn|lstm|gru|bilstm>`) to ONNX and TorchScript, parity-checked.

    python pipelines/export.py model=gru
DVC runs it as `export@<model>` (`+model_key=<model>`) and gets `models/<task>/<model>/export/`:
`model.onnx`, `model.pt` (TorchScript) and `export.json` (interface, labels, parity figures).
"""

import shutil

from omegaconf import DictConfig

from rnnlab.config import model_config, resolve_path
from rnnlab.errors import LayoutError
from rnnlab.export import export_model, load_classifier
from rnnlab.io import atomic_dir, read_json
from rnnlab.stage import entry_point, summary


@entry_point
def main(cfg: DictConfig) -> None:
    name = model_config(cfg)["name"]
    folder = resolve_path(cfg.paths.models_dir) / name
    # An export of an older checkpoint must not survive a failed run looking valid.
    shutil.rmtree(folder / "export", ignore_errors=True)
    model = load_classifier(folder / "checkpoints" / "best.ckpt", name)
    meta_path = resolve_path(cfg.paths.encoded_dir) / "meta.json"
    if not meta_path.is_file():
        raise LayoutError(f"{meta_path} is missing: run the encode stage first (dvc repro encode)")
    with atomic_dir(folder / "export") as out:
        info = export_model(model, out, read_json(meta_path))
    diffs = info["max_abs_diff"]
    summary(
        "export",
        model=name,
        opset=info["opset"],
        onnx_diff=f"{diffs['onnx']:.1e}",
        torchscript_diff=f"{diffs['torchscript']:.1e}",
        seq_lens=",".join(map(str, info["seq_lens"])),
    )


if __name__ == "__main__":
    main()
