"""Issue 14's last two levers: a penalty on Grad-CAM mass outside the predicted lungs, and a
gradient-reversal adversary on the source (given the class)."""

import pytest
import torch
from torchvision.transforms import v2

from classifier import DEFAULT_BUNDLE, DEFAULT_CLASSES, read_metadata
from classifier.bundle import load_bundle_members, load_segmenter
from classifier.networks import build_member
from tests.conftest import LUNGS_MANIFEST, SAMPLE_MANIFEST
from training.__main__ import main
from training.data.datasets import XrayDataset
from training.data.manifests import read_manifest
from training.ensemble.config import TrainConfig
from training.ensemble.fit import fit, training_extras
from training.ensemble.loop import _ema, _refresh_bn
from training.ensemble.objectives import (
    Objective,
    PartialLoss,
    empty_lungs,
    outside_share,
    reverse_gradient,
)

CLASSES = list(DEFAULT_CLASSES)
OPTIONS = {"size": 48, "mean": [0.5] * 3, "std": [0.25] * 3}


def test_outside_share_is_the_map_mass_outside_the_mask():
    cam = torch.zeros(3, 4, 4)
    cam[0, :2] = 1.0  # all in the top half
    cam[1, 2:] = 1.0  # all in the bottom half
    cam[2] = 1.0  # everywhere
    masks = torch.zeros(3, 1, 16, 16)
    masks[:, :, :8] = 1.0  # the top half is "lung"
    share = outside_share(cam, masks)
    assert share.tolist() == pytest.approx([0.0, 1.0, 0.5])
    # Negative evidence is not mass (Grad-CAM's ReLU); an empty map counts as wholly outside,
    # unless asked to cost nothing (the first penalty, kept to measure against).
    assert outside_share(-torch.ones(1, 4, 4), masks[:1]).item() == 1.0
    assert outside_share(-torch.ones(1, 4, 4), masks[:1], empty=0.0).item() == 0.0


def test_an_empty_map_is_pushed_to_show_evidence_in_the_lungs():
    masks = torch.zeros(2, 1, 16, 16)
    masks[:, :, :8] = 1.0
    cam = -torch.ones(2, 4, 4)
    cam[1, 0, 0] = 2.0  # evidence in the lungs: nothing to lift
    cam[0, 3, 3] = -0.1  # the best cell, but outside the lungs
    cam.requires_grad_(True)
    term = empty_lungs(cam, masks)
    assert term[1].item() == 0.0 and term[0].item() > 0.0
    term.sum().backward()
    lifted = cam.grad[0] < 0  # descending the loss raises these cells
    assert lifted.sum() == 1 and lifted[:2].any()  # one cell, in the lung half


def test_the_free_penalty_lets_an_empty_map_cost_nothing_the_default_does_not():
    torch.manual_seed(0)
    model = build_member("mobilenet_v2", 4)
    inputs, targets = torch.randn(2, 3, 64, 64), torch.tensor([0, 1])
    masks = torch.ones(2, 1, 64, 64)
    model.eval()
    costs = {}
    for how in ("outside", "free"):
        cfg = TrainConfig(
            archs=["mobilenet_v2"], epochs=[1], cam_lungs=1.0, cam_empty=how, segmenter="x"
        )
        objective = Objective(model, "mobilenet_v2", PartialLoss(), cfg, 4, 0)
        with torch.no_grad():
            model.classifier[-1].weight.zero_()  # every map empty: no gradient to weigh
        costs[how] = (
            objective(inputs, targets, masks).item() - PartialLoss()(model(inputs), targets).item()
        )
    assert costs["free"] == pytest.approx(0.0, abs=1e-6)
    assert costs["outside"] == pytest.approx(1.0, abs=1e-4)


def test_reverse_gradient_is_identity_forward_and_flips_the_gradient():
    x = torch.randn(5, requires_grad=True)
    y = reverse_gradient(x, 0.5)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full((5,), -0.5))


def test_lung_masks_follow_the_film_through_the_geometric_augmentation():
    records = read_manifest(LUNGS_MANIFEST)[:3]
    segmenter = load_segmenter(DEFAULT_BUNDLE)
    common = {"segmenter": segmenter, "lung_masks": True, "sources": ["shenzhen"], **OPTIONS}
    labels = ("tuberculosis",)
    plain = XrayDataset(records, CLASSES, not_covid_labels=labels, crop="content", **common)
    flipped = XrayDataset(
        records,
        CLASSES,
        not_covid_labels=labels,
        crop="content",
        augment=v2.RandomHorizontalFlip(p=1.0),
        **common,
    )
    for i, r in enumerate(records):
        image, _target, mask, source = plain[i]
        f_image, _, f_mask, _ = flipped[i]
        assert image.shape == (3, 48, 48) and mask.shape == (1, 48, 48)
        assert 0.15 < float(mask.mean()) < 0.7  # two lungs, not the whole film
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(f_mask, mask.flip(-1)) and torch.allclose(f_image, image.flip(-1))
        assert source.item() == (0 if r.source == "shenzhen" else -1)
    # Without the extras the items stay (image, target).
    assert len(XrayDataset(records, CLASSES, not_covid_labels=labels, **OPTIONS)[0]) == 2
    with pytest.raises(ValueError, match="segmenter"):
        XrayDataset(records, CLASSES, not_covid_labels=labels, lung_masks=True, **OPTIONS)


def test_lungs_only_shows_the_film_as_the_occlusion_check_does():
    """With probability 1 every item shows only its lungs: outside the mask the normalised
    image is 0, the mean grey (Predictor.lungs_only multiplies its input by the same mask);
    inside it is the plain item. With probability 0.5 about half the items are masked."""
    records = read_manifest(LUNGS_MANIFEST)[:3]
    segmenter = load_segmenter(DEFAULT_BUNDLE)
    common = {"segmenter": segmenter, "lung_masks": True, "crop": "content", **OPTIONS}
    labels = ("tuberculosis",)
    plain = XrayDataset(records, CLASSES, not_covid_labels=labels, **common)
    masked = XrayDataset(records, CLASSES, not_covid_labels=labels, lungs_only=1.0, **common)
    for i in range(len(records)):
        image, _, mask, _ = plain[i]
        m_image, _, m_mask, _ = masked[i]
        assert torch.equal(m_mask, mask)
        outside = mask.expand_as(image) == 0
        assert bool((m_image[outside] == 0).all()) and bool((image[outside] != 0).any())
        assert torch.equal(m_image[~outside], image[~outside])
    half = XrayDataset(records, CLASSES, not_covid_labels=labels, lungs_only=0.5, **common)
    torch.manual_seed(0)
    shown = [bool((half[i % 3][0] == 0).float().mean() > 0.2) for i in range(60)]
    assert 15 <= sum(shown) <= 45
    with pytest.raises(ValueError, match="lung masks"):
        XrayDataset(records, CLASSES, not_covid_labels=labels, lungs_only=0.5, **OPTIONS)


@pytest.mark.parametrize("arch", ["mobilenet_v2", "vgg11_bn"])
def test_the_cam_penalty_moves_grad_cam_into_the_mask(arch):
    """Descending the penalty alone (no task loss) moves the Grad-CAM mass of each image's
    class into the lungs, measured with the Predictor's own Grad-CAM code."""
    from classifier.cam import gradcam_maps
    from classifier.networks import split_at_cam_layer

    torch.manual_seed(0)
    model = build_member(arch, 4)
    model.classifier[0].p = 0.0  # no dropout: the measurement sees what the penalty saw
    cfg = TrainConfig(archs=[arch], epochs=[1], cam_lungs=1.0, segmenter="given", device="cpu")
    objective = Objective(model, arch, lambda logits, targets: 0.0 * logits.sum(), cfg, 4, 0)
    inputs, targets = torch.randn(8, 3, 128, 128), torch.tensor([0, 1, 2, 3] * 2)
    masks = torch.zeros(8, 1, 128, 128)
    masks[..., 16:112, 8:60] = masks[..., 16:112, 68:120] = 1.0  # two "lungs"
    body, head = split_at_cam_layer(model, arch)
    model.train()

    def share() -> float:
        with torch.no_grad():
            acts = body(inputs)
        (cam,) = gradcam_maps(acts, head, [targets])
        return float(outside_share(cam, masks).mean())

    before = share()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(25):
        penalty = objective(inputs, targets, masks)
        optimizer.zero_grad()
        penalty.backward()
        optimizer.step()
    after = share()
    assert before > 0.2 and after < before / 2, (before, after)


def test_the_adversary_learns_the_source_and_pushes_the_backbone_the_other_way():
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = build_member("mobilenet_v2", 4)
    cfg = TrainConfig(archs=["mobilenet_v2"], epochs=[1], adversary=1.0, device="cpu")
    objective = Objective(model, "mobilenet_v2", PartialLoss(), cfg, 4, 3)
    adversary = objective.adversary
    assert len(objective.parameters()) == 4  # two linear layers, not part of the member
    inputs, targets = torch.randn(6, 3, 64, 64), torch.tensor([0, 1, 2, 3, -1, 3])
    sources = torch.tensor([0, 1, 2, 0, 1, -1])  # -1: a source the adversary does not know
    model.eval()  # no dropout: the two losses below see the same features
    task = PartialLoss()(model(inputs), targets)
    total = objective(inputs, targets, None, sources)
    assert total.item() > task.item()  # plus the adversary's cross-entropy (> 0)
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in objective.parameters())
    # Reversal: the features get the negative of the gradient that would help the adversary;
    # the class (one-hot, a partial row in the extra slot) is given, not learned from.
    pooled = torch.randn(6, adversary[0].in_features - 5, requires_grad=True)
    given = F.one_hot(torch.where(targets >= 0, targets, 4), 5).float()
    known = sources >= 0

    def grad(features):
        guess = adversary(torch.cat([features, given], 1))
        return torch.autograd.grad(F.cross_entropy(guess[known], sources[known]), pooled)[0]

    assert torch.allclose(grad(reverse_gradient(pooled, 1.0)), -grad(pooled))
    assert torch.allclose(grad(reverse_gradient(pooled, 0.25)), -0.25 * grad(pooled))


def test_fit_with_both_levers_keeps_the_member_and_records_them(tmp_path):
    lungs = [r for r in read_manifest(LUNGS_MANIFEST) if not r.external]
    records = read_manifest(SAMPLE_MANIFEST) + lungs
    config = TrainConfig(
        archs=["mobilenet_v2"],
        epochs=[1],
        not_covid_labels=["tuberculosis"],
        intensity="equalize",
        crop="content",
        cam_lungs=1.0,
        adversary=0.3,
        artifacts=True,
        lungs_only=0.5,
        segmenter=str(DEFAULT_BUNDLE),
        input_size=32,
        batch_size=16,
        device="cpu",
    )
    assert training_extras(config, records) == {
        "lung_masks": True,
        "lungs_only": 0.5,
        "sources": sorted({r.source for r in records}),
    }
    path = tmp_path / "b.safetensors"
    fit(records, path, config, progress=False)
    meta, members = load_bundle_members(path)
    assert meta.training["config"]["cam_lungs"] == 1.0
    assert meta.training["config"]["adversary"] == 0.3
    assert meta.training["config"]["lungs_only"] == 0.5
    # The adversary is dropped: the member is a plain MobileNetV2 of the bundle's classes.
    fresh = build_member("mobilenet_v2", 4).state_dict()
    assert set(members["mobilenet"].state_dict()) == set(fresh)
    # The card printed from the bundle's metadata names both.
    from training.evaluation.card import model_card

    card = model_card(path, "make it")
    sees = next(line for line in card.splitlines() if "What the model sees" in line)
    assert "intensity `equalize`, crop `content`" in sees
    assert "penalty on Grad-CAM outside the lungs 1, an empty map counted as outside" in sees
    assert "source adversary 0.3" in sees and "collection-mark augmentation on" in sees
    assert "lungs-only augmentation p 0.5" in sees
    assert "**Prediction sets:** split conformal" in card
    assert set(meta.conformal["thresholds"]) == {"0.90", "0.95"}


def test_config_and_cli_refuse_the_levers_without_what_they_need(tmp_path, capsys):
    with pytest.raises(ValueError, match="segmenter"):
        TrainConfig(cam_lungs=1.0)
    with pytest.raises(ValueError, match="weights"):
        TrainConfig(adversary=-1.0)
    with pytest.raises(ValueError, match="features"):
        TrainConfig(adversary=0.5, strategy="features")
    with pytest.raises(ValueError, match="segmenter"):
        TrainConfig(lungs_only=0.5)
    with pytest.raises(ValueError, match="probability"):
        TrainConfig(lungs_only=1.5, segmenter="given")
    with pytest.raises(ValueError, match="augmentation off"):
        TrainConfig(lungs_only=0.5, segmenter="given", augment=False)
    out = tmp_path / "cli.safetensors"
    argv = ["train", "--manifest", str(SAMPLE_MANIFEST), "--out", str(out)]
    argv += ["--arch", "mobilenet_v2", "--epochs", "1", "--input-size", "32", "--device", "cpu"]
    assert main([*argv, "--cam-lungs", "1"]) == 2
    assert "needs a lung segmenter" in capsys.readouterr().err
    assert main([*argv, "--lungs-only", "0.5"]) == 2
    assert "lungs_only needs a lung segmenter" in capsys.readouterr().err
    assert main([*argv, "--adversary", "0.2", "--segmenter", str(DEFAULT_BUNDLE)]) == 0
    assert read_metadata(out).training["config"]["adversary"] == 0.2


def test_ema_weights_get_batch_norm_statistics_of_their_own():
    """The averaged model's running statistics are recomputed from the training images, not
    averaged (averaging them left the first EMA runs at AUC 0.5)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    ema = _ema(model, 0.9)
    images = torch.randn(40, 3, 8, 8) * 3 + 2
    data = torch.utils.data.TensorDataset(images, torch.zeros(40, dtype=torch.long))
    bn = ema.module[1]
    assert torch.equal(bn.running_mean, torch.zeros(4))  # a fresh copy: nothing seen yet
    _refresh_bn(ema.module, data, 20, torch.device("cpu"))  # two equal batches
    with torch.no_grad():
        conv = ema.module[0](images)
    assert torch.allclose(bn.running_mean, conv.mean(dim=(0, 2, 3)), atol=1e-4)
    assert torch.allclose(bn.running_var, conv.var(dim=(0, 2, 3)), rtol=0.1)
