"""Several trained networks voting as one: soft (mean class probabilities) or hard (majority) votes.

The ensemble is an ordinary module whose outputs are logits: for a soft vote
the log of the members' mean softmax (so softmax of the output is the mean
probability), for a hard vote each class's number of votes plus half the mean
probability, which breaks ties by confidence and never outweighs a vote. Its
argmax is the ensemble's prediction either way, and it exports to ONNX like
any network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

VOTES = ("soft", "hard")


class Ensemble(nn.Module):
    """Members that take the same input and give logits over the same classes, voting as one network."""

    def __init__(self, members: Sequence[nn.Module], vote: str = "soft") -> None:
        super().__init__()
        if vote not in VOTES:
            raise ValueError(f"unknown vote {vote!r}; expected one of {', '.join(VOTES)}")
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.vote = vote

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return combine([member(x) for member in self.members], self.vote)


def combine(logits: Sequence[torch.Tensor], vote: str) -> torch.Tensor:
    """Return the ensemble's logits from its members' logits (what Ensemble.forward returns)."""
    logits = [z.float() for z in logits]
    probability = torch.stack([z.softmax(dim=1) for z in logits]).mean(dim=0)
    if vote == "soft":
        return probability.clamp_min(1e-12).log()
    votes = torch.stack([(z == z.amax(dim=1, keepdim=True)).float() for z in logits]).sum(dim=0)
    return votes + 0.5 * probability
