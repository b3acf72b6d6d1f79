"""What a member is trained to minimise: the class loss (partial labels, class weights), the
penalty on Grad-CAM heat outside the lungs (an empty map counted as outside), and the
adversary on the source, through a reversed gradient."""

import torch
import torch.nn.functional as F
from torch import nn

from classifier.cam import grad_weighted
from classifier.networks import split_at_cam_layer
from training.ensemble.config import TrainConfig


def class_weights(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights of the classes (rows with a partial label do not count)."""
    counts = torch.bincount(targets[targets >= 0], minlength=num_classes).float().clamp(min=1)
    return counts.sum() / (num_classes * counts)


class PartialLoss(nn.Module):
    """Cross-entropy for rows with a class; -log(1 - p(covid19)) for rows whose target is
    ``PARTIAL`` (certainly not covid19, none of the classes). Class weights weigh the first
    kind; a partial row weighs 1. The mean is over the total weight."""

    def __init__(self, weight: torch.Tensor | None = None, covid: int | None = None) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.covid = covid

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        scored = targets >= 0
        safe = targets.clamp_min(0)
        ce = F.cross_entropy(logits, safe, reduction="none")
        weights = self.weight[safe] if self.weight is not None else torch.ones_like(ce)
        weights = torch.where(scored, weights, torch.ones_like(ce))
        if self.covid is None:
            per_row = torch.where(scored, ce, torch.zeros_like(ce))
            weights = weights * scored
        else:
            log_p = logits.log_softmax(dim=1)
            others = torch.cat([log_p[:, : self.covid], log_p[:, self.covid + 1 :]], dim=1)
            not_covid = -torch.logsumexp(others, dim=1)
            per_row = torch.where(scored, ce, not_covid)
        return (per_row * weights).sum() / weights.sum().clamp_min(1e-6)


class _Reverse(torch.autograd.Function):
    """Identity forward; the gradient times -scale backward (Ganin & Lempitsky, 2015)."""

    @staticmethod
    def forward(ctx, x, scale: float):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    return _Reverse.apply(x, scale)


def outside_share(cam: torch.Tensor, masks: torch.Tensor, *, empty: float = 1.0) -> torch.Tensor:
    """Per image, the share of a Grad-CAM map's positive mass outside its lung mask.

    ``cam`` is the Nxhxw map before its ReLU, ``masks`` Nx1xSxS in [0, 1] at the input's size;
    the mask is averaged down to the map's cells. A map with no positive mass counts
    ``empty``: 1, wholly outside, so that hiding the evidence is not free (0 made an empty map
    the cheapest answer, and the first CAM-penalised MobileNet learned it)."""
    pos = F.relu(cam.float())
    inside = lung_cells(masks, cam.shape[-2:])
    total = pos.sum(dim=(1, 2))
    outside = (pos * (1.0 - inside)).sum(dim=(1, 2))
    share = outside / total.clamp_min(1e-6)
    return torch.where(total > 1e-6, share, torch.full_like(share, empty))


def lung_cells(masks: torch.Tensor, shape) -> torch.Tensor:
    """The lung masks averaged down to a map's cells (Nxhxw in [0, 1])."""
    return F.adaptive_avg_pool2d(masks.float(), shape)[:, 0]


def empty_lungs(cam: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per image, how far the map's strongest cell in the lungs is from positive evidence,
    relative to the map's scale: 0 once the map shows any evidence in the lungs. An empty map's
    share (above) is a constant with no gradient; this term's lifts the lungs' best cell."""
    raw = cam.float()
    inside = lung_cells(masks, cam.shape[-2:]) > 0.5
    inside = inside | ~inside.flatten(1).any(1)[:, None, None]  # no lung cell: every cell
    scale = raw.abs().flatten(1).mean(1).clamp_min(1e-6).detach()
    best = raw.masked_fill(~inside, -torch.inf).flatten(1).max(1).values
    return F.relu(-best / scale)


class Objective:
    """A member's training loss: the task loss (``PartialLoss``), plus optionally

    - ``cam_lungs`` x the share of the Grad-CAM map outside the predicted lungs: the map of
      the image's class (its label; the predicted class for a partial-label row), computed as
      the Predictor computes it and differentiated through; an empty map counts as wholly
      outside (``cam_empty`` "outside", the default) or costs nothing ("free");
    - ``adversary``: a small head predicts the film's source from the pooled features and the
      class; its gradient reaches the backbone reversed and scaled by ``adversary``, so the
      features lose what tells the collections apart beyond the class.

    The adversary is not part of the member: it is dropped after training."""

    def __init__(self, model, arch, loss_fn, cfg: TrainConfig, num_classes, num_sources):
        self.model, self.loss_fn, self.num_classes = model, loss_fn, num_classes
        self.cam_lungs, self.adversary_scale = cfg.cam_lungs, cfg.adversary
        self.cam_empty = cfg.cam_empty
        self.body, head = split_at_cam_layer(model, arch)
        self.pool, self.classifier = head[:-1], head[-1]
        self.adversary = None
        if cfg.adversary and num_sources > 1:
            width = self._pooled_width()
            self.adversary = nn.Sequential(
                nn.Linear(width + num_classes + 1, 128), nn.ReLU(), nn.Linear(128, num_sources)
            )

    @torch.no_grad()
    def _pooled_width(self) -> int:
        was = self.model.training
        probe = torch.zeros(1, 3, 64, 64, device=next(self.model.parameters()).device)
        self.model.eval()
        width = self.pool(self.body(probe)).shape[1]
        self.model.train(was)
        return width

    @property
    def plain(self) -> bool:
        return not self.cam_lungs and self.adversary is None

    def parameters(self) -> list[nn.Parameter]:
        return [] if self.adversary is None else list(self.adversary.parameters())

    def to(self, device) -> "Objective":
        if self.adversary is not None:
            self.adversary.to(device)
        return self

    def train(self, mode: bool = True) -> None:
        if self.adversary is not None:
            self.adversary.train(mode)

    def __call__(self, inputs, targets, masks=None, sources=None) -> torch.Tensor:
        if self.plain:
            return self.loss_fn(self.model(inputs).float(), targets)
        acts = self.body(inputs)
        pooled = self.pool(acts)
        logits = self.classifier(pooled).float()
        loss = self.loss_fn(logits, targets)
        if self.cam_lungs and masks is not None:
            cls = torch.where(targets >= 0, targets, logits.argmax(1).detach())
            score = logits.gather(1, cls[:, None]).sum()
            # Grad-CAM as the Predictor computes it (classifier.cam.gradcam_maps), kept in the
            # graph: the extra backward runs through the head alone.
            (grads,) = torch.autograd.grad(score, acts, create_graph=True)
            cam = grad_weighted(acts, grads)
            if self.cam_empty == "free":  # the first penalty, kept to measure against
                share = outside_share(cam, masks, empty=0.0)
            else:
                share = outside_share(cam, masks) + empty_lungs(cam, masks)
            loss = loss + self.cam_lungs * share.mean()
        if self.adversary is not None and sources is not None and (sources >= 0).any():
            known = sources >= 0
            cls = torch.where(targets >= 0, targets, torch.full_like(targets, self.num_classes))
            given = F.one_hot(cls, self.num_classes + 1).float()
            features = reverse_gradient(pooled.float(), self.adversary_scale)
            guess = self.adversary(torch.cat([features, given], dim=1))
            loss = loss + F.cross_entropy(guess[known], sources[known])
        return loss
