"""The allowed values of the diagnostics keys of conf/, torch-free: the callbacks import them from here, and
so does rnnlab.validation, which every stage runs before its work (a data stage imports no torch)."""

LAST = "last"  # diagnostics.gradient_flow.epochs: the last epoch trained (rnnlab.diagnostics.callbacks)
CLIP_ALGORITHMS = ("norm", "value")  # trainer.gradient_clip_algorithm (rnnlab.diagnostics.clipping)
