"""Export: TorchScript and ONNX of every cell match PyTorch at new lengths; the export stage end to end."""

from __future__ import annotations

import dataclasses
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from rnnlab.data.store import EncodedSplit
from rnnlab.data.tokenize import TokenizerConfig
from rnnlab.io import atomic_dir, read_json, write_json
from rnnlab.tasks.classification import onnx_export as export
from rnnlab.tasks.classification.classifier import SequenceClassifier
from rnnlab.tasks.classification.onnx_export import (
    EXAMPLE_LEN,
    ExportError,
    ExportParityError,
    check_parity,
    export_model,
    export_onnx,
    export_torchscript,
    load_classifier,
)
from synthetic import MAX_LEN, VOCAB_SIZE, clean_env, run_stage, run_train, stage_overrides, tiny_overrides

# Each cell with a different pooling, so every padding-aware path is traced once.
CELLS = {
    "rnn": {"cell": "rnn", "pooling": "mean"},
    "lstm": {"cell": "lstm", "pooling": "max"},
    "gru": {"cell": "gru", "pooling": "attention"},
    "bilstm": {"cell": "lstm", "bidirectional": True, "pooling": "last", "num_layers": 2},
}
SEQ_LENS = (1, 6, 29)  # all different from the tracing example's EXAMPLE_LEN
# TorchScript is deprecated in torch 2.13 but is one of the formats under test.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from threads; on a busy 2-core machine two make each call ~20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(cell: str = "gru", seed: int = 0, **encoder) -> SequenceClassifier:
    torch.manual_seed(seed)
    config = {"hidden_size": 8, "embedding_dim": 8, **CELLS[cell], **encoder}
    return SequenceClassifier(VOCAB_SIZE, 2, config).eval()


def export_both(model: SequenceClassifier, folder: Path) -> tuple[Path, Path]:
    onnx_path, ts_path = folder / "model.onnx", folder / "model.pt"
    export_onnx(model, onnx_path)
    export_torchscript(model, ts_path)
    return onnx_path, ts_path


def onnx_dims(path: Path) -> dict[str, list[str | int]]:
    """Each graph input's and output's dimensions: a name where dynamic, a number where fixed."""
    graph = onnx.load(str(path)).graph
    return {
        node.name: [d.dim_param or d.dim_value for d in node.type.tensor_type.shape.dim]
        for node in (*graph.input, *graph.output)
    }


def perturb_onnx_bias(path: Path, delta: float = 0.5) -> None:
    """Shift the first class's bias in the ONNX file (the same shift for every class would cancel out)."""
    proto = onnx.load(str(path))
    init = next(i for i in proto.graph.initializer if i.name == "head.1.bias")
    values = numpy_helper.to_array(init).copy()
    values[0] += delta
    init.CopyFrom(numpy_helper.from_array(values, init.name))
    onnx.save(proto, str(path))


@pytest.mark.parametrize("cell", list(CELLS))
def test_every_cell_exports_with_dynamic_batch_and_sequence(tmp_path, cell):
    model = tiny_model(cell)
    onnx_path, ts_path = export_both(model, tmp_path)
    onnx.checker.check_model(str(onnx_path), full_check=True)
    assert onnx_dims(onnx_path) == {"ids": ["batch", "sequence"], "lengths": ["batch"], "probs": ["batch", 2]}
    parity = check_parity(model, onnx_path, ts_path, seq_lens=SEQ_LENS, batch=5)
    assert parity["seq_lens"] == list(SEQ_LENS) and parity["batch_sizes"] == [1, 5]
    assert set(parity["max_abs_diff"]) == {"torchscript", "onnx"}
    assert all(0 <= diff <= 1e-5 for diff in parity["max_abs_diff"].values()), parity
    # The exported graphs compute probabilities of padded batches, row by row as the unpadded reviews.
    ids = torch.tensor([[3, 4, 5, 6, 7, 8, 9, 2], [9, 5, 2, 0, 0, 0, 0, 0]])
    lengths = torch.tensor([8, 3])
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    probs = session.run(["probs"], {"ids": ids.numpy(), "lengths": lengths.numpy()})[0]
    alone = torch.jit.load(str(ts_path))(ids[1:, :3], lengths[1:]).detach().numpy()
    assert probs.dtype == np.float32 and np.allclose(probs.sum(1), 1.0, atol=1e-6)
    assert np.allclose(probs[1:], alone, atol=1e-6)


def test_two_exports_of_one_cell_in_one_process_both_stay_dynamic(tmp_path):
    """The trap of torch 2.13's dynamo exporter: a second export of an RNN type fixed the sequence length."""
    for seed in (1, 2):
        folder = tmp_path / str(seed)
        folder.mkdir()
        model = tiny_model("gru", seed=seed, pooling="last")
        onnx_path, ts_path = export_both(model, folder)
        assert onnx_dims(onnx_path)["ids"] == ["batch", "sequence"]
        assert max(check_parity(model, onnx_path, ts_path, seq_lens=(29,))["max_abs_diff"].values()) <= 1e-5


def test_parity_check_fails_on_a_tampered_onnx_file(tmp_path):
    model = tiny_model("gru")
    onnx_path, ts_path = export_both(model, tmp_path)
    perturb_onnx_bias(onnx_path)
    with pytest.raises(ExportParityError, match=r"onnx differs by [0-9.e-]+ at sequence length \d+") as error:
        check_parity(model, onnx_path, ts_path, seq_lens=SEQ_LENS)
    assert "torchscript" not in str(error.value)


def test_parity_check_fails_on_a_tampered_torchscript_file(tmp_path):
    model = tiny_model("lstm")
    onnx_path, ts_path = export_both(model, tmp_path)
    scripted = torch.jit.load(str(ts_path))
    with torch.no_grad():
        scripted.state_dict()["head.1.bias"][0] += 0.5
    torch.jit.save(scripted, str(ts_path))
    with pytest.raises(ExportParityError, match="torchscript differs by") as error:
        check_parity(model, onnx_path, ts_path, seq_lens=SEQ_LENS)
    assert "onnx" not in str(error.value)


def test_parity_check_fails_when_the_model_changed_after_export(tmp_path):
    model = tiny_model("rnn")
    onnx_path, ts_path = export_both(model, tmp_path)
    with torch.no_grad():
        model.head[1].bias[0] += 0.5
    with pytest.raises(ExportParityError, match="torchscript differs by .*; onnx differs by"):
        check_parity(model, onnx_path, ts_path, seq_lens=SEQ_LENS)


def test_parity_lengths_must_differ_from_the_tracing_example(tmp_path):
    model = tiny_model("gru")
    with pytest.raises(ValueError, match=f"exclude the tracing length {EXAMPLE_LEN}"):
        check_parity(model, tmp_path / "model.onnx", tmp_path / "model.pt", seq_lens=(3, EXAMPLE_LEN))


# ------------------------------------------------------------------------------------------------------------
# export_model: the stage's folder, its metadata checks, and no folder after a failed parity check


def full_meta(**changes) -> dict:
    """An encode-stage meta.json for the synthetic task (tests/synthetic.py writes only part of it)."""
    meta = {
        "label_names": ["neg", "pos"],
        "num_classes": 2,
        "vocab_size": VOCAB_SIZE,
        "max_len": MAX_LEN,
        "padding": "post",
        "truncating": "pre",
        "tokenizer": dataclasses.asdict(TokenizerConfig()),
    }
    return {**meta, **changes}


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        (
            {k: v for k, v in full_meta().items() if k not in ("label_names", "tokenizer")},
            "meta.json lacks label_names, tokenizer: re-run the encode stage",
        ),
        (full_meta(vocab_size=31), "the checkpoint's vocab_size 30 differs from meta.json's 31"),
    ],
)
def test_export_model_refuses_bad_metadata(tmp_path, meta, message):
    with pytest.raises(ExportError, match=message):
        export_model(tiny_model("gru"), tmp_path, meta)
    assert not list(tmp_path.iterdir())


def test_failed_parity_leaves_no_export_folder(tmp_path, monkeypatch):
    def tampered_onnx(model, path, opset=17):
        export_onnx(model, path, opset)
        perturb_onnx_bias(path)

    monkeypatch.setattr(export, "export_onnx", tampered_onnx)
    with pytest.raises(ExportParityError, match="onnx differs"), atomic_dir(tmp_path / "export") as out:
        export_model(tiny_model("gru"), out, full_meta())
    assert not list(tmp_path.iterdir())  # neither export/ nor its temporary folder


# ------------------------------------------------------------------------------------------------------------
# pipelines/export.py on a model trained by pipelines/train.py


def run_export(project_root: Path, args: list[str], expect_rc: int = 0) -> subprocess.CompletedProcess:
    return run_stage(project_root, "export", args, expect_rc)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, project_root, data) -> tuple[Path, list[str]]:
    """A GRU trained for one epoch by the train stage, and the export stage's overrides for it."""
    import mlflow

    encoded, prepared = data
    work = tmp_path_factory.mktemp("export")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    mlflow.MlflowClient(tracking_uri=uri).create_experiment("imdb", (work / "mlartifacts").as_uri())
    args = [*tiny_overrides(work, encoded, prepared, uri), "model=gru"]
    run_train(project_root, [*args, *stage_overrides("gru"), "trainer.max_epochs=1"])  # as train@gru
    # The export stage reads only meta.json from the encoded folder: give it the full one.
    write_json(work / "encoded" / "meta.json", full_meta())
    return work, [*tiny_overrides(work, work / "encoded", prepared, uri), "model=gru"]


def test_export_stage_writes_a_checked_export(trained, project_root, data):
    """Under umask 027 the folder and its files get 0750/0640, like any new file (not tempfile's 0700)."""
    work, args = trained
    folder = work / "models" / "gru" / "export"
    folder.mkdir()
    (folder / "stale.onnx").write_text("from an older checkpoint")
    done = subprocess.run(
        [sys.executable, "pipelines/export.py", *args],
        cwd=project_root,
        env=clean_env(),
        umask=0o027,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["export.json", "model.onnx", "model.pt"]
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in [folder, *folder.iterdir()]}
    assert modes == {"export": "0o750", "export.json": "0o640", "model.onnx": "0o640", "model.pt": "0o640"}
    info = read_json(folder / "export.json")
    assert info["input_names"] == ["ids", "lengths"] and info["output_names"] == ["probs"]
    assert info["label_names"] == ["neg", "pos"] and info["vocab_size"] == VOCAB_SIZE
    assert info["max_len"] == MAX_LEN and MAX_LEN in info["seq_lens"] and EXAMPLE_LEN not in info["seq_lens"]
    assert info["opset"] == 17 and all(d <= 1e-5 for d in info["max_abs_diff"].values())
    assert done.stdout.strip().splitlines()[-1].startswith("[export] model=gru opset=17 onnx_diff=")
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folders left
    # On the real test split, the ONNX file gives the checkpoint's probabilities.
    test = EncodedSplit.load(data[0] / "test")
    model = SequenceClassifier.load_from_checkpoint(work / "models" / "gru" / "checkpoints" / "best.ckpt")
    ids, lengths = (torch.from_numpy(array.astype(np.int64)) for array in (test.ids, test.lengths))
    with torch.no_grad():
        expected = model.eval()(ids, lengths).softmax(-1).numpy()
    feed = {"ids": ids.numpy(), "lengths": lengths.numpy()}
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    assert np.allclose(session.run(["probs"], feed)[0], expected, atol=1e-5)


def test_export_stage_failure_leaves_no_export_folder(trained, project_root, tmp_path):
    """A checkpoint that does not match the data fails the stage and removes the previous export."""
    work, args = trained
    write_json(tmp_path / "meta.json", full_meta(vocab_size=VOCAB_SIZE + 1))
    (work / "models" / "gru" / "export").mkdir(exist_ok=True)
    done = run_export(project_root, [*args, f"paths.encoded_dir={tmp_path}"], expect_rc=2)
    assert "rnnlab: error: the checkpoint's vocab_size 30 differs" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in (work / "models" / "gru").iterdir()) == ["checkpoints", "summary.txt"]


def test_a_missing_checkpoint_names_the_training_stage(tmp_path):
    checkpoint = tmp_path / "models" / "lstm" / "checkpoints" / "best.ckpt"
    with pytest.raises(ExportError) as error:
        load_classifier(checkpoint, "lstm")
    assert str(error.value) == f"no checkpoint at {checkpoint}: train the model first (dvc repro train@lstm)"
