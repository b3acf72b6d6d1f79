"""Grad-CAM from activations the prediction already computed.

pytorch-grad-cam runs its own forward pass and a backward pass through the whole network.
Grad-CAM needs only d(class logit)/d(target activations), so here the backward pass starts at
the target layer and runs through the head alone, with no parameter gradients. The library
stays the reference: tests and ``classifier.bench`` compare against ``GradCAM``.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def gradcam_maps(
    activations: torch.Tensor, head: nn.Module, class_sets: list[torch.Tensor]
) -> list[torch.Tensor]:
    """Raw (unscaled, ReLU'd) Grad-CAM maps, one Nxhxw float32 tensor per class index set.

    ``activations`` are the target layer's outputs (NxCxhxw); each ``class_sets[k]`` holds one
    class index per image. The head runs forward once; each class set costs one backward pass
    through the head only.
    """
    with torch.enable_grad():
        # A copy outside inference mode: the body ran under torch.inference_mode, and autograd
        # needs a normal tensor to start from. Only this copy and the head are recorded.
        acts = activations.clone().requires_grad_(True)
        logits = head(acts)
        maps = []
        for k, classes in enumerate(class_sets):
            score = logits.gather(1, classes.view(-1, 1).to(logits.device)).sum()
            (grads,) = torch.autograd.grad(score, acts, retain_graph=k < len(class_sets) - 1)
            maps.append(F.relu(grad_weighted(acts.detach(), grads)))
    return maps


def grad_weighted(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM before its ReLU: the activations weighted by their spatially averaged
    gradients, summed over channels (Nxhxw, float32). Training differentiates through it."""
    weights = grads.float().mean(dim=(2, 3), keepdim=True)
    return (weights * acts.float()).sum(dim=1)


def scale_to(cam: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """One hxw map -> float32 array of ``shape`` scaled to [0, 1] (as pytorch-grad-cam does)."""
    cam = cam - cam.min()
    cam = cam / (cam.max() + 1e-7)
    up = F.interpolate(cam[None, None].float(), size=shape, mode="bilinear", align_corners=False)
    return up[0, 0].clamp_(0.0, 1.0).cpu().numpy().astype(np.float32)


def fuse(maps: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Weighted mean of member heatmaps already in [0, 1]."""
    total = float(sum(weights))
    out = np.zeros_like(maps[0])
    for cam, weight in zip(maps, weights, strict=True):
        out += cam * (weight / total)
    return out.astype(np.float32)


def library_gradcam(
    model: nn.Module, layer: nn.Module, batch: torch.Tensor, classes: list[int]
) -> torch.Tensor:
    """pytorch-grad-cam's ``GradCAM`` (its own forward and full backward pass), fp32.

    The reference the fast path is tested against, and the engine behind
    ``cam_engine="pytorch-grad-cam"``. Returns NxHxW maps in [0, 1] at the batch's size.
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    was_frozen = [p for p in model.parameters() if not p.requires_grad]
    model.requires_grad_(True)  # the library backpropagates into the network's parameters
    try:
        with torch.enable_grad(), GradCAM(model=model, target_layers=[layer]) as cam:
            maps = cam(
                input_tensor=batch.float(), targets=[ClassifierOutputTarget(c) for c in classes]
            )
    finally:
        for param in was_frozen:
            param.requires_grad_(False)
    return torch.from_numpy(maps)
