"""The shared projection settings, the model read from a run, and the projection plot."""

import json

import pytest

from benchmarks.costmodel import SIGMA_GPU
from benchmarks.networks import NETWORKS
from benchmarks.projection import Projection, from_run, resolve_sigma, workload_for
from benchmarks.projection_plot import anchor_points, plot_projection


def test_defaults_are_horovod_028_on_the_named_network():
    setting = Projection()
    assert setting.net() == NETWORKS["nvlink-100gbe-roce"]
    assert (setting.fusion().threshold_bytes, setting.fusion().cycle_s) == (128 * 2**20, 1e-3)
    assert setting.base_world_size == 1 and setting.world_sizes == (8, 16, 32, 64, 128, 256)
    assert setting.algorithm == "nccl"


def test_overrides_replace_only_what_is_given():
    net = Projection(inter_gbps=25, gpus_per_node=4).net()
    assert net.inter_bandwidth == 25e9 / 8 and net.gpus_per_node == 4 and net.name.endswith("(modified)")
    assert net.intra_bandwidth == NETWORKS["nvlink-100gbe-roce"].intra_bandwidth
    with pytest.raises(ValueError, match="network must be one of"):
        Projection(network="nope").net()


def test_sigma_comes_from_the_flag_then_a_gpu_run_then_the_fitted_value():
    assert resolve_sigma(Projection(sigma=0.05), 0.01)[0] == 0.05
    assert resolve_sigma(Projection(), 0.01)[0] == 0.01
    assert resolve_sigma(Projection(), None)[0] == SIGMA_GPU


def test_known_architectures_use_their_layer_table():
    assert len(workload_for("resnet50", 0.2).sizes_bytes) == 54
    assert len(workload_for("my-net", 0.2, model_bytes=1e6).sizes_bytes) == 64
    with pytest.raises(ValueError, match="give model bytes"):
        workload_for("my-net", 0.2)


def test_a_cpu_run_measures_sigma_but_projects_with_the_gpu_value(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"step_time_s_median": 0.1, "model_bytes": 4000,
                                                       "per_worker_batch": 16, "world_size": 1}))
    steps = [{"kind": "step", "rank": 0, "world_size": 1, "step": i, "step_time_s": t}
             for i, t in enumerate([0.1, 0.11, 0.09] * 3)]
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in steps))
    model = from_run(tmp_path)
    assert model["sigma"] is None and model["sigma_measured"] == pytest.approx(1.4826 * 0.01 / 0.1)
    assert model["per_worker_batch"] == 16 and model["readiness"].startswith("uniform")
    with pytest.raises(ValueError, match="no readable summary.json"):
        from_run(tmp_path / "missing")


def test_plot_has_the_anchor_points_and_is_a_png(tmp_path):
    anchors = anchor_points()
    assert len(anchors) == 10 and {a["world_size"] for a in anchors} == {8, 128, 256, 512}
    rows = Projection().run(workload_for("resnet50", 0.232), sigma=SIGMA_GPU, per_worker_batch=32)
    out = plot_projection(rows, tmp_path / "p.png", title="t", note="n", anchors=anchors,
                          measured=[{"world_size": 1, "efficiency": 1.0, "images_per_second": 130.0}])
    assert out.read_bytes()[:4] == b"\x89PNG"
