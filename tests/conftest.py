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


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing():
    """Test users' passwords hashed with MD5: PBKDF2's 1,000,000 iterations took about 0.3 s
    for each user a test made, most of a typical web test's time. Production keeps Django's
    default hashers (settings.py sets none); hashes made here are checked only here."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Django's cache (the health report's, the throttles') starts empty in every test."""
    from django.core.cache import cache

    cache.clear()
    return


# Tests of several seconds each (another interpreter or server started, a model trained, a
# burst of processes), marked "long": part of `make test` and `make test-fast`, left out of
# the inner loops `make test-web` and `make test-ml` (measured in tests/README.md). By test
# name, every parametrization included.
LONG_TESTS = {
    "test_boundaries.py::test_classifier_and_training_never_import_django",
    "test_boundaries.py::test_the_web_process_serves_pages_and_api_without_importing_torch",
    "test_boundaries.py::test_the_worker_parent_loads_tasks_without_torch_so_cuda_is_never",
    "security/test_hostile_uploads.py::test_hostile_uploads_get_a_clear_4xx_store_nothing",
    "security/test_fuzz_uploads.py::test_the_gate_judges_images_of_any_mode_size_and_content",
    "xrayweb/test_retrain.py::",
    "xrayweb/test_drift_demo.py::",
    "xrayweb/directory/test_directory.py::test_settings_read_the_directory_from_the_environment",
    "xrayweb/test_broker.py::test_redis_key_prefix_keeps_deployments_sharing_one_redis_apart",
    "xrayweb/test_broker.py::test_a_burst_of_writers_and_readers_loses_nothing",
    "xrayweb/test_api_contract.py::test_the_live_api_never_fails_and_always_matches_its_schema",
    "xrayweb/dicomnet/test_listener.py::test_the_listener_command_prints_its_address_and_stops",
    "xrayweb/dicomnet/test_listener.py::test_a_flood_of_refused_associations_is_audited",
    "xrayweb/dicomnet/test_orthanc_peer.py::test_restart_brings_the_peer_back_on_the_same_ports",
    "xrayweb/test_ops.py::test_make_run_starts_a_dead_worker_again",
    "xrayweb/test_ops.py::test_production_refuses_to_start_with_a_default_missing_or_shared",
    "xrayweb/test_ops.py::test_check_deploy_is_clean_with_production_settings",
    "xrayweb/test_ops.py::test_healthz_reports_a_broker_that_cannot_be_reached",
    "xrayweb/test_metrics.py::test_a_real_prometheus_scrapes_xrayweb",
    "xrayweb/test_inference.py::test_the_worker_can_run_the_pytorch_grad_cam_engine",
    "xrayweb/test_reliability.py::test_redis_visibility_timeout_outlasts_every_task_time_limit",
    "xrayweb/audit/test_migration.py::test_existing_rows_move_and_are_chained",
    # classifier and training: small CPU trainings and the shipped bundle on sample films
    "classifier/test_bench.py::test_bench_runs_every_variant_and_writes_the_json_keys",
    "classifier/test_bench.py::test_bench_runs_on_the_shipped_bundle",
    "classifier/test_canonical.py::test_lung_crop_predictor_keeps_the_cam_inside_the_box_it_saw",
    "classifier/test_canonical.py::test_test_time_zooms_average_each_members_probabilities",
    "classifier/test_conformal.py::test_the_predictor_gives_each_film_its_sets",
    "classifier/test_gate.py::test_a_gate_saved_in_a_bundle_loads_with_the_same_weights_and_thresholds",
    "classifier/test_gate.py::test_the_predictor_assesses_every_image_with_every_layer_of_its_bundles_gate",
    "classifier/test_predictor.py::test_fast_gradcam_matches_the_pytorch_grad_cam_engine",
    "classifier/test_segmentation.py::test_bundle_carries_the_segmenter_and_keeps_its_members",
    "classifier/test_segmentation.py::test_predictor_without_segmenter_or_cam_leaves_the_lung_fields_empty",
    "classifier/test_segmentation.py::test_the_mask_does_not_change_the_classification",
    "classifier/test_shipped_bundle.py::test_default_bundle_beats_chance_clearly_on_unseen_sample_patients",
    "classifier/test_shipped_bundle.py::test_default_bundle_keeps_frontal_films_and_refuses_what_it_cannot_read",
    "classifier/test_shipped_bundle.py::test_default_bundle_looks_at_the_lungs_of_unseen_sample_films",
    "training/test_cv.py::test_cv_command_pools_out_of_fold_predictions_with_intervals",
    "training/test_debias.py::test_config_and_cli_refuse_the_levers_without_what_they_need",
    "training/test_debias.py::test_fit_with_both_levers_keeps_the_member_and_records_them",
    "training/test_debias.py::test_the_cam_penalty_moves_grad_cam_into_the_mask",
    "training/test_evaluate_lungs.py::test_evaluate_adds_lung_adult_and_external_tables",
    "training/test_evaluate_lungs.py::test_evaluate_command_rebuilds_the_bundles_own_test_split",
    "training/test_evaluate_lungs.py::test_evaluate_without_a_segmenter_has_no_lung_tables",
    "training/test_fit.py::test_cached_feature_strategy_trains_only_the_heads_of_a_bundles_members",
    "training/test_fit.py::test_cli_evaluate_writes_exactly_the_report_keys_and_plots",
    "training/test_fit.py::test_fit_trains_calibrates_and_stores_test_metrics_in_the_bundle",
    "training/test_fit.py::test_layer_cutoff_freezes_the_first_blocks_with_source_balanced_sampling",
    "training/test_gate.py::test_a_retrained_bundle_carries_the_gate_network_refitted_with_the_radiologists_answers",
    "training/test_gate.py::test_leave_one_kind_out_trains_each_gate_without_the_kind_it_is_scored_on",
    "training/test_gate.py::test_training_gate_command_writes_a_bundle_whose_predictions_are_assessed",
    "training/test_levers.py::test_fit_with_shenzhen_tuberculosis_as_partial_labels_ema_and_equalisation",
    "training/test_levers.py::test_levers_command_trains_each_setting_per_seed_and_judges_the_same_rows",
    "training/test_occlusion_and_maps.py::test_evaluation_counts_empty_maps_per_member_and_conformal_coverage",
    "training/test_occlusion_and_maps.py::test_the_evaluate_command_runs_the_occlusion_check",
    "training/test_occlusion_and_maps.py::test_the_occlusion_check_reports_agreement_per_source",
    "training/test_segment.py::test_contact_sheets_show_each_source_and_tabulate_lung_area",
    "training/test_segment.py::test_segment_and_attach_commands_make_a_bundle_with_lung_masks",
}


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
        name = f"{where}::{item.originalname}"
        if any(name.startswith(long) for long in LONG_TESTS):
            item.add_marker("long")


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
