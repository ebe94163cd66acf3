"""Weak-scaling efficiency of the harness and its peers from two throughput summaries (closed form)."""

import pytest

from benchmarks.bench_peers import comparisons, spread
from benchmarks.peers import weak_scaling


def _summary(k, harness, **peers):
    return {"model": "resnet-small", "per_worker_batch": 32, "world_size": k, "images_per_second": harness,
            "peers": {name: {"images_per_second": v} for name, v in peers.items()},
            "ratio_to_horovod": harness / peers["horovod"] if "horovod" in peers else None}


def test_weak_scaling_is_images_per_second_at_k_over_k_times_the_base():
    base, scaled = _summary(1, 100.0, horovod=110.0, ddp=90.0), _summary(2, 150.0, horovod=176.0, ddp=171.0)
    assert weak_scaling(base, scaled) == pytest.approx({"harness": 0.75, "ddp": 0.95, "horovod": 0.8})
    with pytest.raises(ValueError, match="same per_worker_batch"):
        weak_scaling(base, {**scaled, "per_worker_batch": 64})
    with pytest.raises(ValueError, match="must exceed"):
        weak_scaling(scaled, base)


def test_comparison_rows_pair_each_repetition():
    names = ("harness LARS", "timm Lars", "SGD", "harness LARS foreach", "timm Lars foreach", "SGD foreach")
    optimizer = [{"rep": r, "optimizer": name, "step_s": t}
                 for r, times in enumerate([(0.09, 0.1, 0.06, 0.12, 0.1, 0.08), (0.08, 0.1, 0.05, 0.1, 0.125, 0.1)])
                 for name, t in zip(names, times)]
    runs = [{"rep": 0, "k": 1, **_summary(1, 100.0, horovod=100.0)},
            {"rep": 0, "k": 2, **_summary(2, 180.0, horovod=170.0)}]
    rows = {r["comparison"]: r["values"] for r in comparisons(optimizer, runs)}
    assert rows["LARS step, ms (harness, defaults)"] == pytest.approx([90.0, 80.0])
    assert rows["LARS step / timm Lars, defaults"] == pytest.approx([0.9, 0.8])
    assert rows["LARS step / SGD, defaults"] == pytest.approx([1.5, 1.6])
    assert rows["LARS step / timm Lars, foreach=True"] == pytest.approx([1.2, 0.8])
    assert rows["LARS step / SGD, foreach=True"] == pytest.approx([1.5, 1.0])
    assert rows["harness / bare Horovod, k = 1, images/s"] == pytest.approx([1.0])
    assert rows["weak-scaling efficiency k = 1 → 2, harness"] == pytest.approx([0.9])
    assert rows["weak-scaling efficiency k = 1 → 2, bare Horovod"] == pytest.approx([0.85])
    assert spread([1.0, 3.0, 2.0]) == "2.000 (1.000–3.000)"
