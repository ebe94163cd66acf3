"""``harness bench input``: this project's pipeline, tf.data's (the MLPerf reference's input) and Pillow's
full decode on the same files, per worker count, written as CSV; bad flags are one line."""

import csv
import json
import subprocess
import sys

import pytest

from harness.runtime.errors import ConfigError
from tests.conftest import ROOT, worker_env


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from harness.runtime.image_files import make_photo_folder

    root = tmp_path_factory.mktemp("photos") / "p"
    make_photo_folder(root, classes=2, images_per_class=40, val_per_class=2)
    return root


def test_every_pipeline_is_measured_on_the_same_files_and_compared_per_core(photos, tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, "-m", "harness_cli", "bench", "input", "--dataset", str(photos),
                           "--data-workers", "1..2", "--images", "64", "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=worker_env())
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(out / "input.csv")))
    assert [(r["pipeline"], r["workers"]) for r in rows] == [
        ("harness", "1"), ("harness-pillow", "1"), ("tfdata", "1"), ("tfdata-default", ""), ("decode", "1"),
        ("harness", "2"), ("harness-pillow", "2"), ("tfdata", "2"), ("decode", "2")]
    for r in rows:
        assert int(r["images"]) >= 64 and float(r["images_per_s"]) > 0
        if r["workers"]:
            assert float(r["images_per_s_per_core"]) == pytest.approx(float(r["images_per_s"]) / int(r["workers"]))
    by = {(r["pipeline"], r["workers"]): r for r in rows}
    for w in ("1", "2"):
        for pipeline in ("harness", "harness-pillow"):
            assert float(by[pipeline, w]["ratio_to_tfdata"]) == pytest.approx(
                float(by[pipeline, w]["images_per_s"]) / float(by["tfdata", w]["images_per_s"]))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kind"] == "input" and summary["image_size"] == 224 and len(summary["results"]) == 9
    assert summary["jpeg_decoder"] == "libjpeg-turbo window"
    assert "harness / tf.data" in proc.stdout


def test_bad_settings_name_their_field(photos, tmp_path):
    from benchmarks.input import InputBench

    for bad, field in ((dict(data_workers=(0,)), "data_workers"), (dict(images=10), "images"),
                       (dict(pipelines=("dali",)), "pipelines")):
        with pytest.raises(ConfigError, match=field):
            InputBench(dataset=str(photos), out=tmp_path / "x", **bad)
