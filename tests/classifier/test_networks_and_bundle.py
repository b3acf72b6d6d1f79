import numpy as np
import pytest
import torch

from classifier import DEFAULT_CLASSES, BundleError, bundle_sha256, read_metadata
from classifier.bundle import load_bundle_members, save_bundle
from classifier.metadata import BundleMetadata, MemberSpec
from classifier.networks import build_member, cam_layer_name, split_at_cam_layer

CLASSES = list(DEFAULT_CLASSES)


@pytest.mark.parametrize(
    ("arch", "layer"),
    [
        ("mobilenet_v2", "features.18"),
        ("mobilenet_v3_small", "features.12"),
        ("vgg11_bn", "features.27"),
        ("vgg16", "features.29"),
    ],
)
def test_body_then_head_equals_the_whole_network(arch, layer):
    torch.manual_seed(0)
    model = build_member(arch, 4).eval()
    body, head = split_at_cam_layer(model, arch)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(head(body(x)), model(x), atol=1e-5)
    assert cam_layer_name(model, arch) == layer
    assert model(x).shape == (2, 4)


def test_vgg_classic_head_keeps_the_4096_classifier():
    model = build_member("vgg11_bn", 3, head="classic")
    assert model.classifier[0].out_features == 4096
    assert model.classifier[-1].out_features == 3


def test_init_loads_a_local_imagenet_state_dict(tmp_path):
    torch.manual_seed(1)
    reference = build_member("mobilenet_v2", 1000)  # a stand-in for ImageNet weights
    state = dict(reference.state_dict())
    path = tmp_path / "imagenet.pth"
    torch.save(state, path)
    model = build_member("mobilenet_v2", 4, init=str(path))
    loaded = model.features[0][0].weight
    assert torch.equal(loaded, reference.features[0][0].weight)
    assert model.classifier[-1].out_features == 4


def test_init_from_a_weights_enum_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(BundleError, match="not in the local cache"):
        build_member("mobilenet_v2", 4, init="MobileNet_V2_Weights.IMAGENET1K_V1")


def test_bundle_round_trip_keeps_metadata_and_weights(tmp_path):
    torch.manual_seed(0)
    meta = BundleMetadata(
        classes=CLASSES,
        members=[MemberSpec("m", "mobilenet_v3_small", weight=2.0)],
        input_size=64,
        metrics={"accuracy": 0.5},
        training={"seed": 0},
    )
    model = build_member("mobilenet_v3_small", 4)
    sha = save_bundle(tmp_path / "b.safetensors", {"m": model}, meta)
    assert sha == bundle_sha256(tmp_path / "b.safetensors")
    assert read_metadata(tmp_path / "b.safetensors") == meta
    loaded_meta, members = load_bundle_members(tmp_path / "b.safetensors")
    assert loaded_meta.members[0].weight == 2.0
    original = model.state_dict()["features.0.0.weight"]
    restored = members["m"].state_dict()["features.0.0.weight"]
    assert restored.dtype == torch.float32
    assert torch.allclose(original, restored, atol=1e-3)  # stored as float16


def test_missing_and_corrupt_bundles_raise_bundle_error(tmp_path):
    with pytest.raises(BundleError, match="not found"):
        read_metadata(tmp_path / "nope.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(BundleError, match="bad header"):
        read_metadata(junk)


def test_weights_that_do_not_fit_the_architecture_are_rejected(tmp_path):
    meta = BundleMetadata(classes=CLASSES, members=[MemberSpec("m", "vgg11_bn")])
    save_bundle(tmp_path / "b.safetensors", {"m": build_member("mobilenet_v2", 4)}, meta)
    with pytest.raises(BundleError, match="do not fit"):
        load_bundle_members(tmp_path / "b.safetensors")


def test_metadata_with_another_format_version_is_rejected():
    with pytest.raises(BundleError, match="format version"):
        BundleMetadata.from_dict({"format_version": 99, "classes": ["a"], "members": []})


def test_bundle_members_must_match_the_weights(tmp_path):
    meta = BundleMetadata(classes=CLASSES, members=[MemberSpec("a", "mobilenet_v2")])
    with pytest.raises(BundleError, match="do not match"):
        save_bundle(tmp_path / "b.safetensors", {"b": build_member("mobilenet_v2", 4)}, meta)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_soft_vote_is_the_weighted_mean():
    from classifier.ensemble import soft_vote

    a = torch.tensor([[0.8, 0.2]])
    b = torch.tensor([[0.2, 0.8]])
    assert np.allclose(soft_vote([a, b], [3.0, 1.0]).numpy(), [[0.65, 0.35]])
