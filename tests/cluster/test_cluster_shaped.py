"""Link rate visible in the benchmark: two hosts whose links ``tc tbf`` shapes to 1 Gbit/s measure an allreduce
busbw within 15% of the line rate (0.125 GB/s) at 16 MiB.

For k = 2 a bandwidth-optimal allreduce sends S bytes out of each host (busbw = algbw · 2(k−1)/k = S/t), so
busbw is bounded by the shaped egress rate. A band check on a shaped link: a behaviour, not a timing target.
"""

from __future__ import annotations

import json
import sys

HARNESS = [sys.executable, "-m", "harness_cli"]
RATE_GBIT = 1.0
BAND = 0.15


def test_allreduce_busbw_follows_the_shaped_link(make_cluster, tmp_path):
    cluster = make_cluster(rate=RATE_GBIT)
    proc = cluster.on("node1", *HARNESS, "bench", "allreduce", "--np", "2", "-H", "node1:1,node2:1", "--controller",
                      "gloo", f"--launcher-args={cluster.args('horovodrun')}", "--sizes", "16MB..16MB", "--iters", "4",
                      "--warmup", "3", "--no-peer", "--out", str(tmp_path / "ar"))
    assert proc.returncode == 0, proc.output
    [result] = json.loads((tmp_path / "ar" / "summary.json").read_text())["results"]
    line_rate = RATE_GBIT * 1e9 / 8 / 1e9  # GB/s
    assert result["size_bytes"] == 16 * 2**20
    assert abs(result["busbw_gbps"] - line_rate) <= BAND * line_rate, result
