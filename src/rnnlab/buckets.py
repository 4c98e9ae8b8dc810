"""Length buckets: edges such as `[100, 200, 400]` cut lengths into `<=100`, `101-200`, `201-400`, `>400`.
Classification scores accuracy per bucket of review length, translation BLEU per bucket of source length."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rnnlab.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEFAULT_LENGTH_BUCKETS = (100, 200, 400)  # review tokens: <=100, 101-200, 201-400, >400 (classification)


def check_bucket_edges(edges: Any) -> list[int]:
    """`edges` (`eval.length_buckets`) as a list of ints; they must be positive and strictly increasing."""
    values = list(edges) if isinstance(edges, Sequence) and not isinstance(edges, str) else []
    positive = all(isinstance(e, int) and not isinstance(e, bool) and e > 0 for e in values)
    if not values or not positive or values != sorted(set(values)):
        raise ConfigError(
            f"eval.length_buckets={edges!r} is not allowed; give positive, strictly increasing "
            f"token counts, e.g. {list(DEFAULT_LENGTH_BUCKETS)}"
        )
    return values


def bucket_names(edges: Sequence[int]) -> list[str]:
    """`[100, 200, 400]` -> `["<=100", "101-200", "201-400", ">400"]`."""
    edges = check_bucket_edges(edges)
    middle = [f"{low + 1}-{high}" for low, high in zip(edges, edges[1:], strict=False)]
    return [f"<={edges[0]}", *middle, f">{edges[-1]}"]


def assign_buckets(token_counts: torch.Tensor, edges: Sequence[int]) -> torch.Tensor:
    """Bucket index of each count: `edges[i-1] < count <= edges[i]` goes to bucket i (edges are inclusive)."""
    import torch  # here: validation checks eval.length_buckets with this module, without torch

    return torch.bucketize(token_counts, torch.tensor(check_bucket_edges(edges), dtype=token_counts.dtype))


def metric_key(bucket: str) -> str:
    """A bucket name safe for MLflow metric names: `<=100` -> `le100`, `101-200` -> `101_200`."""
    return bucket.replace("<=", "le").replace(">", "gt").replace("-", "_")


def bucket_of_key(key: str) -> str:
    """The bucket name a metric key stands for (metric_key's inverse): `le100` -> `<=100`."""
    if key.startswith("le"):
        return "<=" + key[2:]
    if key.startswith("gt"):
        return ">" + key[2:]
    return key.replace("_", "-")


def shortest_first(name: str) -> int:
    """Sort key of a bucket name: the shortest length it holds (`<=100` 0, `101-200` 101, `>400` 401)."""
    if name.startswith("<="):
        return 0
    if name.startswith(">"):
        return int(name[1:]) + 1
    return int(name.split("-")[0])
