import json

import pytest

from classifier.bench import main
from tests.conftest import SAMPLE_DIR

KEYS = {
    "device",
    "batch",
    "naive_ips",
    "cam_ips",
    "forward_ips",
    "a_over_b",
    "b_over_c",
    "gflop_per_image",
    "achieved_gflops",
    "matmul_gflops",
    "matmul_dtype",
    "lungs",
    "cam_no_lungs_ips",
    "b_over_b_no_lungs",
    "tta",
    "cam_tta_ips",
    "tta_over_b",
    "machine",
    "gate",
    "cam_no_gate_ips",
    "b_over_b_no_gate",
}


def test_bench_runs_every_variant_and_writes_the_json_keys(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(
        [
            "--arch",
            "mobilenet_v3_small,vgg11_bn",
            "--input-size",
            "64",
            "--images",
            "4",
            "--image-dir",
            str(SAMPLE_DIR / "images"),
            "--batch",
            "2",
            "--repeats",
            "1",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result) >= KEYS
    assert result["batch"] == 2 and result["device"] == "cpu"
    assert result["image_dir"] == str(SAMPLE_DIR / "images") and result["synthetic_images"] == 0
    for key in ("naive_ips", "cam_ips", "forward_ips", "gflop_per_image", "matmul_gflops"):
        assert result[key] > 0
    assert result["a_over_b"] == pytest.approx(result["cam_ips"] / result["naive_ips"])
    assert result["lungs"] is True  # random members get a random U-Net
    assert result["b_over_b_no_lungs"] == pytest.approx(
        result["cam_no_lungs_ips"] / result["cam_ips"]
    )
    assert result["tta_over_b"] == pytest.approx(result["cam_ips"] / result["cam_tta_ips"])
    # (b) is the product's path with the gate; (b°) the same without it.
    assert result["gate"] == "random"
    assert result["b_over_b_no_gate"] == pytest.approx(
        result["cam_no_gate_ips"] / result["cam_ips"]
    )
    printed = capsys.readouterr().out
    assert "(a) naive" in printed and "(b-)" in printed and "b/b- =" in printed
    assert "(b°)" in printed and "b/b° =" in printed
    assert "(d) (b) with test-time zooms" in printed and "d/b =" in printed


def test_bench_runs_on_the_shipped_bundle(tmp_path):
    out = tmp_path / "bench.json"
    assert main(["--images", "2", "--batch", "2", "--repeats", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["image_dir"] is None and result["synthetic_images"] == 2
    assert result["members"] == ["mobilenet:mobilenet_v2", "vgg:vgg11_bn"]
    assert result["gflop_per_image"] > 1
    assert result["lungs"] is True  # the shipped bundle carries its segmenter
