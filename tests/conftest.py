import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from classifier import DEFAULT_CLASSES

SAMPLE_DIR = Path(__file__).parent / "data" / "cxr_sample"
SAMPLE_MANIFEST = SAMPLE_DIR / "manifest.csv"
LUNGS_DIR = Path(__file__).parent / "data" / "lungs_sample"
LUNGS_MANIFEST = LUNGS_DIR / "manifest.csv"
CLASSES = list(DEFAULT_CLASSES)

# Markers set by where a test lives, so that `make test-fast` (-m "not browser and not worker
# and not faults") leaves out what needs Chromium, worker processes or fault injection.
MARKERS_BY_PATH = {
    "browser/": ("browser",),
    "faults/": ("faults", "worker"),
    "xrayweb/test_end_to_end.py": ("worker",),
    "xrayweb/dicomnet/test_end_to_end.py": ("worker",),
}


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Django's cache (the health report's, the throttles') starts empty in every test."""
    from django.core.cache import cache

    cache.clear()
    return


def pytest_collection_modifyitems(config, items) -> None:
    tests = Path(__file__).parent
    for item in items:
        if not item.path.is_relative_to(tests):
            continue
        where = item.path.relative_to(tests).as_posix()
        for prefix, names in MARKERS_BY_PATH.items():
            if where.startswith(prefix):
                for name in names:
                    item.add_marker(name)


def pytest_unconfigure(config) -> None:
    """A thread a test left running that is not a daemon keeps the interpreter from exiting
    after the summary: CI then waits out its whole time limit with nothing said (an aborted
    DICOM association once did this). Such threads are named, with where they are, and the
    run ends with exit status 3 instead of hanging."""
    import sys
    import threading
    import traceback

    left = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and t.is_alive() and not t.daemon
    ]
    if not left:
        return
    frames = sys._current_frames()
    sys.stderr.write(f"\n{len(left)} thread(s) left running after the tests:\n")
    for thread in left:
        stack = "".join(traceback.format_stack(frames.get(thread.ident))[-8:])
        sys.stderr.write(f"--- {thread.name} ({type(thread).__name__})\n{stack}")
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(3)


def worker_argv(*options: str, module: str = "celery") -> list[str]:
    """A `celery worker` command line for this project's queues, run by this interpreter."""
    import sys

    return [
        sys.executable,
        "-m",
        module,
        "-A",
        "xrayweb",
        "worker",
        "-Q",
        "inference,default",
        "--loglevel",
        "INFO",
        *options,
    ]


@dataclass
class BrokerTarget:
    """Where this test process publishes tasks, and the environment that points a worker
    process at the same queues."""

    url: str
    options: dict = field(default_factory=dict)
    worker_env: dict = field(default_factory=dict)

    def use(self) -> None:
        """Point this process's Celery publisher here."""
        from xrayweb.celery import app

        # The app reads Django settings with the CELERY_ namespace, so override those keys,
        # then drop the cached publishing pools so the next .delay() uses them.
        app.conf.CELERY_BROKER_URL = self.url
        app.conf.CELERY_BROKER_TRANSPORT_OPTIONS = self.options
        app._pool = None
        app.amqp._producer_pool = None

    def fresh(self, folder: Path) -> "BrokerTarget":
        """Queues of their own (a new key prefix, or a new folder) on the same broker, so a
        worker started by one test never takes another test's leftover messages."""
        if self.url.startswith("redis"):
            return redis_broker(self.url)
        return filesystem_broker(folder)


def filesystem_broker(folder: Path) -> BrokerTarget:
    from xrayweb.brokers import filesystem_broker_options

    return BrokerTarget(
        "filesystem://",
        filesystem_broker_options(folder),
        {"CELERY_BROKER_URL": "filesystem://", "BROKER_DIR": str(folder), "REDIS_URL": ""},
    )


def named_broker(name: str, folder: Path) -> BrokerTarget:
    """The embedded brokers measured against each other (tests/bench/broker_burst.py):
    "atomic" (this project's filesystem transport), "kombu" (kombu's own) or "sqlalchemy"
    (kombu's SQLAlchemy transport on a SQLite file)."""
    from xrayweb.brokers import filesystem_broker_options

    if name == "sqlalchemy":
        folder.mkdir(parents=True, exist_ok=True)
        url = f"sqla+sqlite:///{folder / 'broker.sqlite3'}"
        # No polling_interval: kombu passes every transport option on to create_engine,
        # which refuses it, so this transport polls at kombu's default (1 s).
        return BrokerTarget(url, {}, {"CELERY_BROKER_URL": url})
    url = {"atomic": "filesystem://", "kombu": "kombu-filesystem://"}[name]
    return BrokerTarget(
        url,
        filesystem_broker_options(folder),
        {"CELERY_BROKER_URL": url, "BROKER_DIR": str(folder), "REDIS_URL": ""},
    )


def redis_broker(url: str) -> BrokerTarget:
    """The given Redis, every key under a prefix of this run's own (REDIS_KEY_PREFIX)."""
    prefix = f"xrayweb-test-{uuid.uuid4().hex[:12]}:"
    return BrokerTarget(
        url,
        {"global_keyprefix": prefix, "visibility_timeout": 3600},
        {"REDIS_URL": url, "CELERY_BROKER_URL": "", "REDIS_KEY_PREFIX": prefix},
    )


def redis_forget(broker: BrokerTarget) -> None:
    """Delete the keys a test run left under its prefix."""
    import redis

    client = redis.Redis.from_url(broker.url)
    for key in client.scan_iter(match=broker.options["global_keyprefix"] + "*"):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session", autouse=True)
def test_broker(tmp_path_factory) -> BrokerTarget:
    """Tasks enqueued by tests never reach the developer's own broker folder or queues.

    With TEST_REDIS_URL (make test sets the machine's Redis) every task the suite enqueues
    goes through that Redis, under a key prefix of this run's own, deleted at the end; the
    suite stops at once if that Redis cannot be reached. Without it, a filesystem broker in a
    temporary folder."""
    url = os.environ.get("TEST_REDIS_URL", "")
    if not url:
        broker = filesystem_broker(tmp_path_factory.mktemp("broker"))
        broker.use()
        yield broker
        return
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        pytest.exit(f"TEST_REDIS_URL={url} cannot be reached: {exc}", returncode=3)
    broker = redis_broker(url)
    broker.use()
    yield broker
    redis_forget(broker)


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


@pytest.fixture(scope="session")
def tiny_bundle_with_lungs(tiny_bundle, tmp_path_factory) -> Path:
    """``tiny_bundle`` (the same members) with a two-level random U-Net at 32 px as its lung
    segmenter. Random weights give an all-background mask, so the output bias is shifted by
    the median logit on a few sample X-rays: on X-rays, about half of each film is "lung",
    in a blobby shape with a contour to draw."""
    import torch
    from PIL import Image

    from classifier.bundle import load_bundle_members, save_bundle
    from classifier.preprocess import gray_batch, to_gray_array
    from classifier.segmentation import SegmenterSpec, segmenter_input, unet

    torch.manual_seed(0)
    meta, members = load_bundle_members(tiny_bundle)
    spec = SegmenterSpec(input_size=32, config={"widths": [4, 8], "in_channels": 1})
    net = unet(spec.unet_config()).eval()
    films = sorted((SAMPLE_DIR / "images").glob("*.jpg"))[:4]
    with torch.no_grad():
        gray = gray_batch([to_gray_array(Image.open(f)) for f in films], spec.input_size)
        net.out.bias -= net(segmenter_input(gray, spec)).median()
    path = tmp_path_factory.mktemp("bundles") / "tiny-lungs.safetensors"
    save_bundle(path, members, meta, segmenter=(spec, net))
    return path


def bundle_with(source: Path, out: Path, **changes) -> Path:
    """A copy of the bundle at ``source`` (its members and segmenter) at ``out``, with these
    metadata fields replaced."""
    from dataclasses import replace

    from classifier.bundle import load_bundle_members, load_segmenter, save_bundle

    meta, members = load_bundle_members(source)
    save_bundle(out, members, replace(meta, **changes), segmenter=load_segmenter(source))
    return out


@pytest.fixture
def sample_images() -> list[Path]:
    return sorted((SAMPLE_DIR / "images").glob("*.jpg"))


@pytest.fixture(scope="session")
def tiny_bundle_with_gate(tiny_bundle_with_lungs, tmp_path_factory) -> Path:
    """``tiny_bundle_with_lungs`` with a random gate network and a feature distance fitted on
    the tiny ensemble's features of a few sample X-rays, thresholds that keep everything."""
    from dataclasses import replace

    import numpy as np
    import torch
    from PIL import Image

    from classifier import load_bundle
    from classifier.bundle import Gate, load_bundle_members, load_segmenter, save_bundle
    from classifier.gate import GateSpec, gate_net
    from training.gate.train import fit_distance

    torch.manual_seed(0)
    films = [Image.open(f) for f in sorted((SAMPLE_DIR / "images").glob("*.jpg"))[:12]]
    predictor = load_bundle(tiny_bundle_with_lungs, device="cpu", gate=False)
    features = np.stack([r.features for r in predictor.predict(films, cam=False, features=True)])
    spec = replace(GateSpec(), min_frontal=0.0, max_distance=1e12)
    gate = Gate(spec, gate_net(spec).eval(), fit_distance(features, rank=8))
    meta, members = load_bundle_members(tiny_bundle_with_lungs)
    path = tmp_path_factory.mktemp("bundles") / "tiny-gate.safetensors"
    save_bundle(path, members, meta, segmenter=load_segmenter(tiny_bundle_with_lungs), gate=gate)
    return path
