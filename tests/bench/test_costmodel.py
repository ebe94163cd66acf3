"""Cost-model invariants, closed forms, the link fit, and the published cases."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import costmodel as cm
from benchmarks.published import CASES, GOYAL, HOROVOD

NET = cm.Network(gpus_per_node=8, inter_bandwidth=100 * cm.GBIT, intra_bandwidth=150e9, latency_s=10e-6)


@pytest.mark.parametrize("k", [2, 3, 8, 256])
def test_ring_moves_2_k_minus_1_over_k_times_s(k):
    assert cm.ring_time(1000.0, k, alpha=0.0, bandwidth=1.0) == pytest.approx(2 * (k - 1) / k * 1000.0)
    assert cm.ring_time(0.0, k, alpha=1.0, bandwidth=1.0) == 2 * (k - 1)


@pytest.mark.parametrize("k", [2, 4, 64, 256])
def test_halving_doubling_latency_is_2_log2_k_alpha(k):
    assert cm.halving_doubling_time(0.0, k, alpha=1.0, bandwidth=1.0) == 2 * math.log2(k)
    assert cm.halving_doubling_time(5e6, k, alpha=0.0, bandwidth=1e9) == cm.ring_time(5e6, k, alpha=0.0, bandwidth=1e9)


def test_single_worker_has_no_communication():
    for algorithm in cm.ALGORITHMS:
        assert cm.allreduce_time(1e8, 1, NET, algorithm) == 0.0
    assert cm.step_time(1e8, 0.2, 1, NET)["step_time_s"] == 0.2


@pytest.mark.parametrize("algorithm", cm.ALGORITHMS)
def test_infinite_bandwidth_and_zero_latency_give_efficiency_1(algorithm):
    net = cm.Network(8, 1e30, 1e30, 0.0, 0.0)
    rows = cm.project(1e9, 0.3, [8, 64, 256], net, algorithm=algorithm, cycle_s=0.0)
    assert [r["efficiency"] for r in rows] == pytest.approx([1.0, 1.0, 1.0])
    assert rows[-1]["efficiency_vs_compute"] == pytest.approx(1.0)


@settings(max_examples=60)
@given(model_mb=st.floats(1, 600), compute=st.floats(0.01, 1.0), algorithm=st.sampled_from(cm.ALGORITHMS),
       fraction=st.floats(0.0, 1.0))
def test_step_time_is_monotone_in_k(model_mb, compute, algorithm, fraction):
    ks = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    times = [cm.step_time(model_mb * 2**20, compute, k, NET, algorithm=algorithm, backward_fraction=fraction)["step_time_s"]
             for k in ks]
    assert all(b >= a - 1e-12 for a, b in zip(times, times[1:]))
    assert times[0] == compute


def test_hierarchical_with_one_gpu_per_node_is_a_flat_ring_over_nodes():
    net = dataclasses.replace(NET, gpus_per_node=1)
    assert cm.allreduce_time(1e8, 16, net, "hierarchical") == pytest.approx(cm.allreduce_time(1e8, 16, net, "ring"))


def test_hierarchical_pays_node_latency_not_worker_latency():
    slow = cm.Network(8, 1e30, 1e30, latency_s=1e-3, intra_latency_s=0.0)
    assert cm.allreduce_time(1.0, 256, slow, "ring") == pytest.approx(2 * 255 * 1e-3)
    assert cm.allreduce_time(1.0, 256, slow, "hierarchical") == pytest.approx(2 * 31 * 1e-3)


def test_buckets_overlap_backward_but_the_last_one_is_exposed():
    net = cm.Network(1, 1e9, 1e9, 0.0, 0.0)
    fully_overlapped = cm.step_time(1e6, 1.0, 2, net, fusion_bytes=1e5, cycle_s=0.0)
    assert fully_overlapped["buckets"] == 10
    # the last bucket (1e5 bytes) is ready at the end of backward: its allreduce (1e5/1e9 s) is exposed
    assert fully_overlapped["exposed_comm_s"] == pytest.approx(1e5 / 1e9)
    no_overlap = cm.step_time(1e6, 1.0, 2, net, fusion_bytes=1e6, cycle_s=0.0)
    assert no_overlap["exposed_comm_s"] == pytest.approx(1e6 / 1e9)
    assert sum(cm.bucket_sizes(1e6 + 5, 1e5)) == 1e6 + 5


def test_fit_link_recovers_alpha_and_bandwidth():
    sizes = np.array([1e3, 1e4, 1e5, 1e6, 1e7, 1e8])
    times = np.array([cm.ring_time(s, 4, alpha=20e-6, bandwidth=3e9) for s in sizes])
    alpha, bandwidth = cm.fit_link(sizes, times, 4)
    assert alpha == pytest.approx(20e-6, rel=1e-6) and bandwidth == pytest.approx(3e9, rel=1e-6)
    with pytest.raises(ValueError, match="k >= 2"):
        cm.fit_link(sizes, times, 1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(gpus_per_node=0, inter_bandwidth=1.0, intra_bandwidth=1.0), "gpus_per_node"),
    (dict(gpus_per_node=8, inter_bandwidth=0.0, intra_bandwidth=1.0), "inter_bandwidth"),
    (dict(gpus_per_node=8, inter_bandwidth=1.0, intra_bandwidth=1.0, latency_s=-1.0), "latency_s"),
])
def test_network_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cm.Network(**kwargs)


def _predicted(case, bandwidth_fraction=1.0):
    net = dataclasses.replace(case.network, inter_bandwidth=case.network.inter_bandwidth * bandwidth_fraction,
                              intra_bandwidth=case.network.intra_bandwidth * bandwidth_fraction)
    rows = cm.project(case.model_bytes, case.compute_s, [case.base_world_size, case.world_size], net,
                      algorithm=case.algorithm, fusion_bytes=case.fusion_bytes, cycle_s=1e-3)
    return rows[-1]["efficiency"]


def test_published_cases_golden_predictions():
    # The README's validation table; a change to the model shows up here.
    got = {c.name: round(_predicted(c), 3) for c in CASES}
    assert got == {GOYAL.name: 0.991, HOROVOD[0].name: 0.966, HOROVOD[1].name: 0.956, HOROVOD[2].name: 0.808}


def test_model_ranks_the_horovod_models_as_published():
    predicted = [_predicted(c, 0.5) for c in HOROVOD]
    assert predicted[2] < min(predicted[:2])  # VGG-16 (528 MiB of gradients) scales worst
    assert all(c.published_efficiency <= p for c, p in zip(CASES, [_predicted(c) for c in CASES]))
