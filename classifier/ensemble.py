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
    temperature: float = 1.0

    @classmethod
    def wrap(
        cls, name: str, arch: str, model: nn.Module, weight: float = 1.0, temperature: float = 1.0
    ) -> "Member":
        body, head = split_at_cam_layer(model, arch)
        return cls(name, arch, weight, model, body, head, cam_layer_name(model, arch), temperature)


def soft_vote(member_probs: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """Weighted mean of the members' class probabilities (rows still sum to 1)."""
    total = float(sum(weights))
    stacked = torch.stack([p * (w / total) for p, w in zip(member_probs, weights, strict=True)])
    return stacked.sum(0)


def temper(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Temperature scaling of probabilities: softmax(log p / T)."""
    if temperature == 1.0:
        return probs
    return (probs.clamp_min(1e-12).log() / temperature).softmax(dim=1)


def decide(probs: torch.Tensor, classes: list[str], thresholds: dict[str, float]) -> torch.Tensor:
    """Argmax, except that a class whose probability reaches its threshold is predicted."""
    predicted = probs.argmax(dim=1)
    for name, threshold in thresholds.items():
        k = classes.index(name)
        predicted = torch.where(probs[:, k] >= threshold, torch.full_like(predicted, k), predicted)
    return predicted
