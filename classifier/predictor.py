"""The public API: ``load_bundle(path).predict(images) -> list[Prediction]``."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.v2.functional import affine

from classifier.bundle import Gate, load_bundle_members, load_gate, load_segmenter
from classifier.cam import fuse, gradcam_maps, library_gradcam, scale_to
from classifier.conformal import prediction_sets
from classifier.device import resolve_device, use_bf16
from classifier.ensemble import Member, decide, soft_vote, temper
from classifier.errors import BundleError
from classifier.gate import (
    Assessment,
    GateSpec,
    Limits,
    assess,
    gate_input,
    image_checks,
    lung_stats,
    pooled_features,
)
from classifier.metadata import BundleMetadata
from classifier.preprocess import (
    Box,
    content_box,
    crop,
    full_box,
    gray_batch,
    lung_box,
    model_input,
    paste,
    scale_box,
    to_gray_array,
)
from classifier.segmentation import SegmenterSpec, cam_lung_fraction, predict_masks

# "fast": one forward pass serves prediction and CAM, backward through the head only.
# "pytorch-grad-cam": the library's GradCAM, its own forward and a full backward pass (fp32).
CAM_ENGINES = ("fast", "pytorch-grad-cam")


def _box_shape(box: Box) -> tuple[int, int]:
    return box[1] - box[0], box[3] - box[2]


@dataclass
class Prediction:
    label: str
    probabilities: dict[str, float]
    members: dict[str, dict[str, float]]
    heatmaps: dict[str, np.ndarray] = field(default_factory=dict)
    fused_heatmap: np.ndarray | None = None
    # Extra CAMs asked for with ``cam_classes``: class -> {member or "fused": heatmap}.
    class_heatmaps: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    # The predicted lung fields (boolean, at the heatmaps' size) when the bundle has a
    # segmenter; their share of the image; and the share of the fused CAM's mass inside them.
    lung_mask: np.ndarray | None = None
    lung_area_fraction: float | None = None
    cam_lung_fraction: float | None = None
    # Whether the model can read this image at all (classifier.gate), with reasons and scores.
    assessment: Assessment | None = None
    # The ensemble's pooled features (the gate's distance is measured on them), on request.
    features: np.ndarray | None = None
    # Conformal prediction sets: coverage level ("0.90") -> the classes the model cannot rule
    # out, most probable first ({} when the bundle has no conformal thresholds).
    prediction_sets: dict[str, list[str]] = field(default_factory=dict)


class Predictor:
    def __init__(
        self,
        meta: BundleMetadata,
        members: list[Member],
        *,
        device: torch.device,
        precision: str = "auto",
        batch_size: int = 8,
        cam_engine: str = "fast",
        channels_last: bool = True,
        cam_max_side: int | None = None,
        segmenter: tuple[SegmenterSpec, torch.nn.Module] | None = None,
        tta: tuple[float, ...] = (),
        gate: Gate | None = None,
        checks: bool = True,
    ) -> None:
        if cam_engine not in CAM_ENGINES:
            raise ValueError(f"cam_engine must be one of {CAM_ENGINES}, not {cam_engine!r}")
        self.cam_engine = cam_engine
        # Heatmaps at the input's aspect ratio with at most this many pixels on the longest
        # side (None: the input's own resolution). Upsampling 7×7 maps to a 5-megapixel film
        # costs more than the model; a viewer scales them anyway.
        self.cam_max_side = cam_max_side
        # Test-time augmentation: each member's probabilities are averaged over the input and
        # these zooms of it (e.g. (0.92, 1.08)); the CAM explains the input itself.
        self.tta = tuple(float(z) for z in tta)
        self.meta = meta
        self.members = members
        self.device = device
        self.bf16 = use_bf16(device, precision)
        self.batch_size = max(1, int(batch_size))
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        for member in members:
            member.model.to(device=device, memory_format=self.memory_format).eval()
            for param in member.model.parameters():
                param.requires_grad_(False)
        self.segmenter = None
        if segmenter is None and meta.crop == "lungs":
            raise BundleError("this bundle crops to the lungs: it needs its lung segmenter")
        if segmenter is not None:
            spec, net = segmenter
            net.to(device=device, memory_format=self.memory_format).eval().requires_grad_(False)
            self.segmenter = (spec, net)
        # Without a gate of its own a bundle still gets the deterministic checks (``checks``
        # False only to measure what they cost: classifier.bench).
        self.gate = gate
        self.checks = checks
        # The occlusion check (training.occlusion): the model input outside the predicted lungs
        # set to the normalisation's mean, after the intensity step, so the lungs keep their
        # grey levels. Never on in the worker.
        self.lungs_only = False
        self.gate_spec = gate.spec if gate is not None else GateSpec()
        self.limits = Limits(**self.gate_spec.limits)
        if gate is not None:
            gate.net.to(device).eval().requires_grad_(False)
            if gate.distance is not None:
                gate.distance.to(device)

    @property
    def classes(self) -> list[str]:
        return list(self.meta.classes)

    @property
    def cam_layers(self) -> dict[str, str]:
        return {m.name: m.cam_layer for m in self.members}

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def predict(
        self,
        images: list[Image.Image | np.ndarray],
        cam: bool = True,
        cam_classes: list[str] | None = None,
        features: bool = False,
    ) -> list[Prediction]:
        """Classify images (PIL or 2-D/3-D arrays, any size); batching happens here.

        With ``cam`` the predicted class is explained per member and fused, at each input's
        resolution; ``cam_classes`` adds CAMs for further classes at one head backward each.
        Every result carries the gate's assessment; ``features`` adds the pooled features.
        """
        extra = [self.meta.classes.index(c) for c in (cam_classes or [])]
        results: list[Prediction] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            results.extend(self._predict_batch(chunk, cam, extra, features))
        return results

    def warm_up(self) -> None:
        """Run one full batch of blank images, so that the first real batch does not pay for
        oneDNN's (or cuDNN's) kernel selection at this batch shape."""
        blank = np.zeros((self.meta.input_size, self.meta.input_size), dtype=np.float32)
        self.predict([blank] * self.batch_size, cam=True)

    def _predict_batch(self, images, cam: bool, extra: list[int], features: bool):
        arrays = [to_gray_array(img) for img in images]
        checks = [
            image_checks(img, a, self.limits) if self.checks else ([], {})
            for img, a in zip(images, arrays, strict=True)
        ]
        cam_shapes = [self._cam_shape(a.shape) for a in arrays]
        contents = [
            full_box(a.shape) if self.meta.crop == "none" else content_box(a) for a in arrays
        ]
        masks = self._lungs(arrays, contents, cam_shapes)
        boxes = contents
        if self.meta.crop == "lungs":
            boxes = [
                lung_box(m, c, margin=self.meta.crop_margin)
                for m, c in zip(masks, contents, strict=True)
            ]
        batch = model_input(
            arrays,
            boxes,
            size=self.meta.input_size,
            intensity=self.meta.intensity,
            mean=self.meta.mean,
            std=self.meta.std,
        )
        if self.lungs_only:
            batch = batch * self._input_lungs(masks, batch.shape[-1])
        batch = batch.to(self.device).contiguous(memory_format=self.memory_format)
        member_probs, activations = [], []
        with torch.inference_mode(), self._autocast():
            for member in self.members:
                acts = member.body(batch)
                logits = member.head(acts).float() / member.temperature
                probs = logits.softmax(dim=1)
                for zoom in self.tta:
                    view = affine(batch, angle=0.0, translate=[0, 0], scale=zoom, shear=[0.0])
                    probs = probs + (member.model(view).float() / member.temperature).softmax(1)
                member_probs.append(probs / (1 + len(self.tta)))
                activations.append(acts)
        probs = soft_vote(member_probs, [m.weight for m in self.members])
        probs = temper(probs, self.meta.ensemble_temperature)
        predicted = decide(probs, self.meta.classes, self.meta.decision_thresholds)
        maps: dict[str, list[torch.Tensor]] = {}
        if cam:
            class_sets = [predicted] + [torch.full_like(predicted, c) for c in extra]
            for member, acts in zip(self.members, activations, strict=True):
                maps[member.name] = self._cams(member, acts, batch, class_sets)
        kinds, distances, pooled = self._gate_scores(arrays, contents, activations, features)
        sets = prediction_sets(probs.float().cpu().numpy(), self.meta.classes, self.meta.conformal)
        results = []
        for i, array in enumerate(arrays):
            seen = scale_box(boxes[i], array.shape, cam_shapes[i])
            result = self._result(
                i, probs, member_probs, predicted, maps, seen, cam_shapes[i], extra
            )
            result.prediction_sets = sets[i]
            if masks[i] is not None:
                mask = paste(
                    masks[i],
                    scale_box(contents[i], array.shape, cam_shapes[i]),
                    cam_shapes[i],
                    False,
                )
                result.lung_mask = mask
                result.lung_area_fraction = float(mask.mean())
                if result.fused_heatmap is not None:
                    result.cam_lung_fraction = cam_lung_fraction(result.fused_heatmap, mask)
            result.assessment = assess(
                self.gate_spec,
                checks=checks[i][0],
                scores=checks[i][1],
                kind_probs=None if kinds is None else kinds[i],
                distance=None if distances is None else float(distances[i]),
                lungs=None if masks[i] is None else lung_stats(masks[i]),
            )
            if features:
                result.features = pooled[i].numpy()
            results.append(result)
        return results

    def _input_lungs(self, masks, size: int) -> torch.Tensor:
        """The predicted lungs on the model's input grid (Nx1xSxS, 1 inside): each mask is of
        the content box, which is what the model sees unless it crops to the lungs."""
        if self.segmenter is None or self.meta.crop == "lungs":
            raise BundleError("lungs_only needs a segmenter, and a bundle that does not crop")
        return torch.cat(
            [
                F.interpolate(torch.from_numpy(m.astype(np.float32))[None, None], size=(size, size))
                for m in masks
            ]
        )

    def _gate_scores(self, arrays, contents, activations, features: bool):
        """The gate network's kind probabilities (on each image inside its uniform borders:
        letterboxing is no sign of a CT) and the feature distance, per image (Nones without a
        gate), and, if asked for, the pooled features they were measured on."""
        if self.gate is None:
            pooled = pooled_features(activations).cpu() if features else None
            return None, None, pooled
        pooled = pooled_features(activations)
        if self.meta.crop == "none":
            contents = [content_box(a) for a in arrays]
        crops = [crop(a, c) for a, c in zip(arrays, contents, strict=True)]
        gray = gray_batch(crops, self.gate_spec.input_size).to(self.device)
        with torch.inference_mode():
            kinds = self.gate.net(gate_input(gray)).float().softmax(1).cpu().numpy()
            distances = None
            if self.gate.distance is not None:
                distances = self.gate.distance(pooled).cpu().numpy()
        return kinds, distances, pooled.cpu() if features else None

    def _lungs(self, arrays, contents, cam_shapes) -> list[np.ndarray | None]:
        """One lung mask per image, of its content box at the heatmap's scale; Nones without
        a segmenter."""
        if self.segmenter is None:
            return [None] * len(arrays)
        shapes = [
            _box_shape(scale_box(c, a.shape, s))
            for a, c, s in zip(arrays, contents, cam_shapes, strict=True)
        ]
        return predict_masks(
            self.segmenter,
            [crop(a, c) for a, c in zip(arrays, contents, strict=True)],
            shapes,
            device=self.device,
            bf16=self.bf16,
            memory_format=self.memory_format,
        )

    def _cam_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        if self.cam_max_side is None or max(shape) <= self.cam_max_side:
            return shape
        scale = self.cam_max_side / max(shape)
        return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))

    def _cams(self, member: Member, acts, batch, class_sets) -> list[torch.Tensor]:
        if self.cam_engine == "fast":
            with self._autocast():
                return gradcam_maps(acts, member.head, class_sets)
        layer = member.body[-1]
        return [library_gradcam(member.model, layer, batch, c.tolist()) for c in class_sets]

    def _result(self, i, probs, member_probs, predicted, maps, seen, shape, extra) -> Prediction:
        """``seen``: the box the model saw, at the heatmap's scale; the CAM is zero outside it."""
        classes = self.meta.classes
        weights = [m.weight for m in self.members]
        as_dict = lambda row: {c: float(row[j]) for j, c in enumerate(classes)}  # noqa: E731
        pred = Prediction(
            label=classes[int(predicted[i])],
            probabilities=as_dict(probs[i]),
            members={
                m.name: as_dict(p[i]) for m, p in zip(self.members, member_probs, strict=True)
            },
        )
        if maps:
            for k in range(1 + len(extra)):
                per_member = {
                    m.name: paste(scale_to(maps[m.name][k][i], _box_shape(seen)), seen, shape)
                    for m in self.members
                }
                fused = fuse(list(per_member.values()), weights)
                if k == 0:
                    pred.heatmaps, pred.fused_heatmap = per_member, fused
                else:
                    pred.class_heatmaps[classes[extra[k - 1]]] = {**per_member, "fused": fused}
        return pred


def load_bundle(
    path: Path,
    device: str | torch.device | None = None,
    *,
    precision: str = "auto",
    batch_size: int = 8,
    cam_engine: str = "fast",
    channels_last: bool = True,
    cam_max_side: int | None = None,
    lungs: bool = True,
    tta: tuple[float, ...] = (),
    gate: bool = True,
) -> Predictor:
    """Load a bundle from disk (never the network) into a ready Predictor.

    With ``lungs`` (and a bundle that has a segmenter) each prediction carries a lung mask;
    with ``gate`` (and a bundle that has one) the learned layers of the gate judge it too.
    """
    dev = resolve_device(device)
    meta, models = load_bundle_members(path, device=dev)
    members = [
        Member.wrap(spec.name, spec.arch, models[spec.name], spec.weight, spec.temperature)
        for spec in meta.members
    ]
    return Predictor(
        meta,
        members,
        device=dev,
        precision=precision,
        batch_size=batch_size,
        cam_engine=cam_engine,
        channels_last=channels_last,
        cam_max_side=cam_max_side,
        segmenter=load_segmenter(path, device=dev) if lungs or meta.crop == "lungs" else None,
        tta=tta,
        gate=load_gate(path, device=dev) if gate else None,
    )
