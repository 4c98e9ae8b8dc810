"""Where an AT perturbation of norm ε lands: its share per token, against the size of a token's vector.

    python bench/bench_adversarial.py --checkpoint runs/imdb/lstm/<run>/checkpoints/best.ckpt \
        --encoded data/encoded/imdb --epsilon 1 5

For a classifier trained with `train.adversarial=at` (normalised embeddings), on the first `--reviews`
validation reviews in eval mode: r_adv = ε g/‖g‖ exactly as training computes it
(rnnlab.tasks.classification.adversarial), then per review the norm of the largest per-token slice of r_adv,
the share of ‖r_adv‖² on its top 1 and top 5 tokens, and the median norm of the normalised token vectors it is
added to; medians over reviews. Also the accuracy on those reviews when every review is moved by its r_adv
(what the AT loss trains against). """

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from rnnlab.tasks.classification.adversarial import at_perturbation
from rnnlab.tasks.classification.classifier import SequenceClassifier
from rnnlab.tasks.classification.sequence_data import SequenceDataModule


def token_shares(r_adv: torch.Tensor, lengths: torch.Tensor) -> dict[str, list[float]]:
    """Per review: the largest per-token norm of r_adv, the share of ‖r_adv‖² on its top 1 / top 5 tokens."""
    out: dict[str, list[float]] = {"max_token_norm": [], "top1_share": [], "top5_share": []}
    for row, length in zip(r_adv, lengths.tolist(), strict=True):
        squared = row[: max(length, 1)].pow(2).sum(-1).sort(descending=True).values
        total = float(squared.sum())
        out["max_token_norm"].append(float(squared[0].sqrt()))
        out["top1_share"].append(float(squared[0]) / total)
        out["top5_share"].append(float(squared[:5].sum()) / total)
    return out


def measure(model: SequenceClassifier, batch: dict[str, torch.Tensor], epsilon: float) -> dict[str, float]:
    """The medians of `token_shares` and the token vectors' norm, and the accuracy moved by r_adv."""
    ids, lengths, labels = batch["ids"], batch["lengths"], batch["labels"]
    embedded = model.encoder.embed(ids).detach().requires_grad_()
    loss = model.loss(model.classify(embedded, lengths), labels)
    r_adv = at_perturbation(loss, embedded, lengths, epsilon)
    shares = {key: statistics.median(values) for key, values in token_shares(r_adv, lengths).items()}
    mask = torch.arange(ids.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
    with torch.no_grad():
        moved = model.classify(embedded + r_adv, lengths).argmax(-1)
    return {
        **shares,
        "token_vector_norm": float(embedded.detach().norm(dim=-1)[mask].median()),
        "acc_moved": float((moved == labels).float().mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a best.ckpt trained with AT")
    parser.add_argument("--encoded", type=Path, required=True, help="the encode stage's folder")
    parser.add_argument("--epsilon", type=float, nargs="+", default=[1.0, 5.0])
    parser.add_argument("--reviews", type=int, default=512, help="validation reviews measured")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = SequenceClassifier.load_from_checkpoint(args.checkpoint, map_location="cpu").eval()
    if model.hparams.adversarial == "none":
        parser.error(f"{args.checkpoint} was trained without AT/VAT: its embeddings are not normalised")
    data = SequenceDataModule(args.encoded, batch_size=args.reviews, bucket=False)
    batch = next(iter(data.loader("val", shuffle=False)))
    with torch.no_grad():
        clean = float((model(batch["ids"], batch["lengths"]).argmax(-1) == batch["labels"]).float().mean())
    print(f"checkpoint: {args.checkpoint} (trained at epsilon {model.hparams.adversarial_epsilon})")
    print(f"{len(batch['labels'])} validation reviews, accuracy {clean:.4f} clean; medians over reviews:")
    print("epsilon  max token norm  top-1 share  top-5 share  token vector norm  acc moved")
    for epsilon in args.epsilon:
        m = measure(model, batch, epsilon)
        print(
            f"{epsilon:7.2f}  {m['max_token_norm']:14.3f}  {m['top1_share']:11.3f}  {m['top5_share']:11.3f}"
            f"  {m['token_vector_norm']:17.2f}  {m['acc_moved']:9.4f}"
        )


if __name__ == "__main__":
    main()
