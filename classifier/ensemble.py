"""Ensemble members and soft voting."""

from dataclasses import dataclass

import torch
from torch import nn

from classifier.networks import cam_layer_name, split_at_cam_layer


@dataclass
class Member:
    name: str
    arch: str
    weight: float
    model: nn.Module
    body: nn.Sequential
    head: nn.Sequential
    cam_layer: str

    @classmethod
    def wrap(cls, name: str, arch: str, model: nn.Module, weight: float = 1.0) -> "Member":
        body, head = split_at_cam_layer(model, arch)
        return cls(name, arch, weight, model, body, head, cam_layer_name(model, arch))


def soft_vote(member_probs: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """Weighted mean of the members' class probabilities (rows still sum to 1)."""
    total = float(sum(weights))
    stacked = torch.stack([p * (w / total) for p, w in zip(member_probs, weights, strict=True)])
    return stacked.sum(0)
