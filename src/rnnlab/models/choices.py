"""The allowed values of the model and optimiser keys of conf/, torch-free: the modules that use them import
them from here, and so does rnnlab.validation, which every stage runs before its work (a data stage imports
no torch)."""

CELLS = ("rnn", "lstm", "gru")  # model.cell: the keys of rnnlab.models.cells.CELLS, the registry
POOLINGS = ("last", "mean", "max", "attention")  # model.pooling (rnnlab.models.pooling)
INITS = ("orthogonal", "default")  # model.init (rnnlab.models.encoder)
SCHEDULERS = ("plateau", "onecycle", "none")  # optim.scheduler (rnnlab.models.base)
MODES = ("min", "max")  # task.mode: the monitored metric's direction (rnnlab.models.base)
ADVERSARIAL_MODES = ("none", "at", "vat")  # train.adversarial (rnnlab.tasks.classification.adversarial)
ATTENTIONS = (
    "none",
    "additive",
    "multiplicative",
    "dot",
)  # model.attention (rnnlab.tasks.translate.attention)
