from pathlib import Path

import pytest

SAMPLE_DIR = Path(__file__).parent / "data" / "cxr_sample"
SAMPLE_MANIFEST = SAMPLE_DIR / "manifest.csv"
CLASSES = ["covid19", "bacterial_pneumonia", "viral_pneumonia", "normal"]


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A MobileNetV2 + VGG11-BN bundle with random weights at 64 px: fast on any CPU."""
    import torch

    from classifier.bundle import save_bundle
    from classifier.metadata import BundleMetadata, MemberSpec
    from classifier.networks import build_member

    torch.manual_seed(0)
    meta = BundleMetadata(
        classes=CLASSES,
        members=[MemberSpec("mobilenet", "mobilenet_v2"), MemberSpec("vgg", "vgg11_bn")],
        input_size=64,
        created_at="2026-01-01T00:00:00+00:00",
        metrics={"note": "random weights for tests"},
    )
    members = {"mobilenet": build_member("mobilenet_v2", 4), "vgg": build_member("vgg11_bn", 4)}
    path = tmp_path_factory.mktemp("bundles") / "tiny.safetensors"
    save_bundle(path, members, meta)
    return path


@pytest.fixture
def sample_images() -> list[Path]:
    return sorted((SAMPLE_DIR / "images").glob("*.jpg"))
