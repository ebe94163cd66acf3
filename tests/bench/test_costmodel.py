"""Cost-model terms: closed forms, Horovod's fusion ticks, stragglers, interference, readiness, the link fit."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import costmodel as cm

NET = cm.Network(gpus_per_node=8, inter_bandwidth=100 * cm.GBIT, intra_bandwidth=150e9, latency_s=10e-6)
FREE = cm.Network(1, 1e9, 1e9, 0.0, 0.0)  # 1 GB/s, no latency, one worker per node


def one_tensor(size, ready=1.0, compute=1.0):
    return cm.Workload((size,), (ready,), compute)


@pytest.mark.parametrize("k", [2, 3, 8, 256])
def test_ring_moves_2_k_minus_1_over_k_times_s(k):
    assert cm.ring_time(1000.0, k, alpha=0.0, bandwidth=1.0) == pytest.approx(2 * (k - 1) / k * 1000.0)
    assert cm.ring_time(0.0, k, alpha=1.0, bandwidth=1.0) == 2 * (k - 1)


@pytest.mark.parametrize("k", [2, 4, 64, 256])
def test_halving_doubling_latency_is_2_log2_k_alpha(k):
    assert cm.halving_doubling_time(0.0, k, alpha=1.0, bandwidth=1.0) == 2 * math.log2(k)
    assert cm.halving_doubling_time(5e6, k, alpha=0.0, bandwidth=1e9) == cm.ring_time(5e6, k, alpha=0.0, bandwidth=1e9)


def test_nccl_takes_the_faster_of_ring_and_tree_per_message():
    net = cm.Network(1, 1e9, 1e9, 1e-3, 1e-3)
    assert cm.allreduce_time(8.0, 64, net, "nccl") == pytest.approx(cm.allreduce_time(8.0, 64, net, "hd"))
    assert cm.allreduce_time(8.0, 64, net, "nccl") < cm.allreduce_time(8.0, 64, net, "ring")


def test_achieved_fraction_scales_the_bandwidth_term():
    half = dataclasses.replace(FREE, inter_efficiency=0.5)
    assert cm.allreduce_time(1e6, 4, half) == pytest.approx(2 * cm.allreduce_time(1e6, 4, FREE))


def test_single_worker_has_no_communication_and_no_stragglers():
    for algorithm in cm.ALGORITHMS:
        assert cm.allreduce_time(1e8, 1, NET, algorithm) == 0.0
    assert cm.step_time(cm.Workload.uniform(1e8, 0.2), 1, NET, sigma=0.1)["step_time_s"] == 0.2


def test_hierarchical_with_one_gpu_per_node_is_a_flat_ring_over_nodes():
    net = dataclasses.replace(NET, gpus_per_node=1)
    assert cm.allreduce_time(1e8, 16, net, "hierarchical") == pytest.approx(cm.allreduce_time(1e8, 16, net, "ring"))


def test_hierarchical_pays_node_latency_not_worker_latency():
    slow = cm.Network(8, 1e30, 1e30, latency_s=1e-3, intra_latency_s=0.0)
    assert cm.allreduce_time(1.0, 256, slow, "ring") == pytest.approx(2 * 255 * 1e-3)
    assert cm.allreduce_time(1.0, 256, slow, "hierarchical") == pytest.approx(2 * 31 * 1e-3)
    assert cm.allreduce_time(1.0, 256, slow, "hierarchical-hd") == pytest.approx(2 * 5 * 1e-3)


@pytest.mark.parametrize("k, value", [(1, 0.0), (2, 1 / math.sqrt(math.pi)), (3, 1.5 / math.sqrt(math.pi))])
def test_expected_max_of_normals_closed_forms(k, value):
    assert cm.expected_max_normal(k) == pytest.approx(value, abs=1e-6)


def test_expected_max_of_normals_tabulated_values():
    # Harter 1961 tables: 8 → 1.4236, 256 → 2.8 (≈ 2.87 to 3 decimals here)
    assert cm.expected_max_normal(8) == pytest.approx(1.4236, abs=1e-4)
    assert cm.expected_max_normal(100) == pytest.approx(2.5076, abs=1e-4)


def test_stragglers_stretch_compute_by_sigma_times_expected_max():
    w = cm.Workload.uniform(1.0, 1.0)
    got = cm.step_time(w, 8, cm.Network(8, 1e30, 1e30, 0.0, 0.0), sigma=0.02, interference=0.0)
    assert got["compute_s"] == pytest.approx(1 + 0.02 * cm.expected_max_normal(8))


def test_horovod_sends_a_tensor_at_the_next_cycle_tick():
    # ready at 0.0105 s, cycle 1 ms → leaves at the 0.011 s tick; 1e6 bytes at k = 2 take 1e6/1e9 s
    w = one_tensor(1e6, ready=1.0, compute=0.0105)
    got = cm.step_time(w, 2, FREE, algorithm="ring", fusion=cm.Fusion(64 * cm.MIB, 1e-3), interference=0.0)
    assert got["step_time_s"] == pytest.approx(0.011 + 1e-3) and got["messages"] == 1


def test_horovod_fuses_what_is_ready_in_one_cycle_and_splits_at_the_threshold():
    ready = (0.5001, 0.5004, 0.5008, 1.0)  # three tensors within one 1 ms cycle (tick at 0.501), one at the end
    w = cm.Workload((1e5, 1e5, 1e5, 1e5), ready, 1.0)
    fused = cm.step_time(w, 2, FREE, algorithm="ring", fusion=cm.Fusion(1e6, 1e-3), interference=0.0)
    assert fused["messages"] == 2
    split = cm.step_time(w, 2, FREE, algorithm="ring", fusion=cm.Fusion(2e5, 1e-3), interference=0.0)
    assert split["messages"] == 3  # 2e5 + 1e5 at the first tick, the last tensor alone
    unfused = cm.step_time(w, 2, FREE, algorithm="ring", fusion=cm.Fusion(0.0, 1e-3), interference=0.0)
    assert unfused["messages"] == 4


def test_one_allreduce_in_flight_at_a_time():
    # two 0.1 s allreduces ready together at the end: the step ends 0.2 s after compute
    w = cm.Workload((1e8, 1e8), (1.0, 1.0), 1.0)
    got = cm.step_time(w, 2, FREE, algorithm="ring", fusion=cm.PER_LAYER, interference=0.0)
    assert got["exposed_comm_s"] == pytest.approx(0.2) and got["comm_s"] == pytest.approx(0.2)


def test_bucket_engines_send_a_bucket_when_it_is_full():
    w = cm.Workload.uniform(1e6, 1.0, backward_fraction=1.0, pieces=10)
    got = cm.step_time(w, 2, FREE, algorithm="ring", fusion=cm.Fusion(2e5, 0.0), interference=0.0)
    assert got["messages"] == 5
    # the last bucket (2e5 bytes) is ready at the end of backward: its 2e5/1e9 s is exposed
    assert got["exposed_comm_s"] == pytest.approx(2e5 / 1e9)


def test_readiness_order_decides_what_is_exposed():
    # 470 MiB ready first (VGG-16's fully connected layers) overlaps backward; ready last it is all exposed
    net = cm.Network(1, 1e9, 1e9, 0.0, 0.0)
    first = cm.Workload((470e6, 50e6), (0.34, 1.0), 1.0)
    last = cm.Workload((50e6, 470e6), (0.34, 1.0), 1.0)
    kw = dict(algorithm="ring", fusion=cm.PER_LAYER, interference=0.0)
    assert cm.step_time(first, 2, net, **kw)["exposed_comm_s"] == pytest.approx(0.05)
    assert cm.step_time(last, 2, net, **kw)["exposed_comm_s"] == pytest.approx(0.47)


def test_interference_slows_backward_by_gamma_times_overlap():
    # one allreduce in flight through the whole backward (ready at its start, long): u = 1
    w = cm.Workload((5e9, 1.0), (0.5, 1.0), 1.0)
    got = cm.step_time(w, 2, FREE, algorithm="ring", fusion=cm.PER_LAYER, interference=0.1)
    assert got["overlap"] == pytest.approx(1.0)
    assert got["compute_s"] == pytest.approx(0.5 + 0.5 * 1.1)


@pytest.mark.parametrize("algorithm", cm.ALGORITHMS)
def test_infinite_network_leaves_only_stragglers(algorithm):
    net = cm.Network(8, 1e30, 1e30, 0.0, 0.0)
    rows = cm.project(cm.Workload.uniform(1e9, 0.3), [8, 64, 256], net, algorithm=algorithm, sigma=0.0,
                      fusion=cm.Fusion(cm.MIB, 1e-9))
    assert [r["efficiency"] for r in rows] == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)


def test_efficiency_is_relative_to_the_stated_base():
    w = cm.Workload.uniform(1e8, 0.25)
    alone = cm.project(w, [256], NET, sigma=cm.SIGMA_GPU)
    assert alone[0]["base_world_size"] == 1 and alone[0]["efficiency"] < 0.95
    rows = cm.project(w, [8, 256], NET, base_world_size=8, sigma=cm.SIGMA_GPU, per_worker_batch=32)
    assert rows[0]["efficiency"] == 1.0
    assert rows[1]["images_per_second"] == pytest.approx(256 * 32 / rows[1]["step_time_s"])


@settings(max_examples=40, deadline=None)
@given(model_mb=st.floats(1, 600), compute=st.floats(0.01, 1.0), algorithm=st.sampled_from(cm.ALGORITHMS),
       fraction=st.floats(0.05, 1.0))
def test_step_time_grows_with_k_for_bucket_engines(model_mb, compute, algorithm, fraction):
    w = cm.Workload.uniform(model_mb * 2**20, compute, backward_fraction=fraction)
    ks = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    times = [cm.step_time(w, k, NET, algorithm=algorithm, fusion=cm.DDP, sigma=0.02)["step_time_s"] for k in ks]
    assert all(b >= a - 1e-12 for a, b in zip(times, times[1:]))
    assert times[0] == compute


def test_fit_link_recovers_alpha_and_bandwidth():
    sizes = np.array([1e3, 1e4, 1e5, 1e6, 1e7, 1e8])
    times = np.array([cm.ring_time(s, 4, alpha=20e-6, bandwidth=3e9) for s in sizes])
    alpha, bandwidth = cm.fit_link(sizes, times, 4)
    assert alpha == pytest.approx(20e-6, rel=1e-6) and bandwidth == pytest.approx(3e9, rel=1e-6)
    with pytest.raises(ValueError, match="k >= 2"):
        cm.fit_link(sizes, times, 1)


def test_step_time_spread_is_the_robust_coefficient_of_variation():
    # one 5 s outlier barely moves it (the standard deviation would be 1.6)
    assert cm.step_time_spread([1.0, 1.1, 0.9, 1.0, 1.0, 5.0]) == pytest.approx(1.4826 * 0.05)
    assert cm.step_time_spread([1.0, 1.1, 0.9, 1.2, 0.8]) == pytest.approx(1.4826 * 0.1 / 1.0)
    with pytest.raises(ValueError, match="at least 5"):
        cm.step_time_spread([1.0, 1.0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(gpus_per_node=0, inter_bandwidth=1.0, intra_bandwidth=1.0), "gpus_per_node"),
    (dict(gpus_per_node=8, inter_bandwidth=0.0, intra_bandwidth=1.0), "inter_bandwidth"),
    (dict(gpus_per_node=8, inter_bandwidth=1.0, intra_bandwidth=1.0, latency_s=-1.0), "latency_s"),
    (dict(gpus_per_node=8, inter_bandwidth=1.0, intra_bandwidth=1.0, inter_efficiency=1.5), "inter_efficiency"),
])
def test_network_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cm.Network(**kwargs)


def test_workload_validation():
    with pytest.raises(ValueError, match="non-decreasing"):
        cm.Workload((1.0, 1.0), (0.9, 0.5), 1.0)
    with pytest.raises(ValueError, match="one ready time per tensor"):
        cm.Workload((1.0,), (0.5, 1.0), 1.0)


def test_the_input_side_is_the_slowest_stage_when_it_is_slower_than_the_step():
    net = dataclasses.replace(cm.Network(gpus_per_node=8, inter_bandwidth=12.5e9, intra_bandwidth=300e9,
                                         latency_s=1e-5), name="t")
    workload = cm.Workload.uniform(1e6, 0.1)
    side = cm.InputSide(images_per_s_per_node=8 * 32 / 0.2)  # a node's 8 workers need 0.2 s of input a step
    rows = cm.project(workload, [1, 8, 16], net, per_worker_batch=32, input_side=side)
    assert [r["input_s"] for r in rows] == pytest.approx([32 / 1280, 0.2, 0.2])  # k = 1: one worker on its node
    assert [r["bound"] for r in rows] == ["compute", "input", "input"]
    assert rows[1]["step_time_s"] == pytest.approx(0.2) and rows[1]["train_step_s"] < 0.2
    assert rows[1]["efficiency"] == pytest.approx(rows[0]["step_time_s"] / 0.2)
    assert rows[2]["images_per_second"] == pytest.approx(16 * 32 / 0.2)
    bare = cm.project(workload, [1, 8, 16], net, per_worker_batch=32)
    assert [r["step_time_s"] for r in bare] == [r["train_step_s"] for r in rows]
    with pytest.raises(ValueError, match="go together"):
        cm.InputSide(storage_bytes_per_s=1e9)
    with pytest.raises(ValueError, match="per_worker_batch"):
        cm.project(workload, [8], net, input_side=side)
