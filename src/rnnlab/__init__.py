"""rnnlab: recurrent sequence models compared through DVC, Lightning, Hydra and MLflow."""

__version__ = "0.1.0"
