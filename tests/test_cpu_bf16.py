"""bfloat16 autocast on the CPU (`trainer.precision=bf16-mixed`; README "Devices", bench/README.md)."""

from __future__ import annotations

import torch

from synthetic import run_folders, run_train, tiny_overrides


def test_bf16_autocast_on_the_cpu_learns_and_keeps_float32_weights(tmp_path, project_root, data):
    """`trainer.precision=bf16-mixed` on the CPU (the README's bf16 figures): an adversarially trained BiLSTM
    learns the synthetic task, its run says so, and the checkpoint's weights stay float32 (autocast computes
    in bfloat16; the optimizer updates float32 weights)."""
    import mlflow

    encoded, prepared = data
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = [*tiny_overrides(tmp_path, encoded, prepared, uri), "model=bilstm", "trainer.max_epochs=2"]
    run_train(project_root, [*overrides, "trainer.precision=bf16-mixed", "train.adversarial=at"])
    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("imdb").experiment_id])
    params = run.data.params
    assert params["trainer/precision"] == "bf16-mixed" and params["train/adversarial"] == "at"
    assert run.data.metrics["val/acc_best"] >= 0.9 and run.data.metrics["test/acc"] >= 0.9
    (folder,) = run_folders(tmp_path, "bilstm")
    weights = torch.load(folder / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    floats = {tensor.dtype for tensor in weights["state_dict"].values() if tensor.is_floating_point()}
    assert floats == {torch.float32}


def fused_flags(folder) -> set:
    """The `fused` flag of every parameter group of the optimizer the run's last checkpoint saved."""
    checkpoint = torch.load(folder / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return {group["fused"] for state in checkpoint["optimizer_states"] for group in state["param_groups"]}


def test_adamw_is_fused_in_float32_and_not_under_mixed_precision(tmp_path, project_root, data):
    """AdamW's fused kernel (rnnlab.models.base) in a float32 run; the per-tensor one under bf16-mixed, whose
    gradient clipping Lightning refuses for an optimizer that unscales its own gradients."""
    encoded, prepared = data
    for precision, fused in (("32-true", {True}), ("bf16-mixed", {None, False})):
        out = tmp_path / precision
        uri = f"sqlite:///{out / 'mlflow.db'}"
        overrides = [*tiny_overrides(out, encoded, prepared, uri), "model=gru", "trainer.max_epochs=1"]
        run_train(project_root, [*overrides, f"trainer.precision={precision}"])
        (folder,) = run_folders(out, "gru")
        flags = fused_flags(folder)
        assert flags and flags <= fused, precision
