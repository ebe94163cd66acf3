"""Layer tables of the published networks, FLOPs-split readiness, and the measured backward trace."""

import json

import numpy as np
import pytest

from benchmarks.layer_trace import load_trace, trace_backward
from benchmarks.layer_trace import main as trace_main
from benchmarks.layers import ARCHITECTURES, architecture, readiness

# torchvision's parameter counts (Inception V3 without the auxiliary classifier: 27,161,264 − 3,326,696)
# and forward GFLOPs per image (2 × the multiply-adds usually quoted: 4.09, 7.80, 15.47, 5.71 G).
PARAMS = {"resnet50": 25_557_032, "resnet101": 44_549_160, "vgg16": 138_357_544, "inception3": 23_834_568}
GFLOPS = {"resnet50": 8.18, "resnet101": 15.60, "vgg16": 30.94, "inception3": 11.43}


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_tables_match_the_reference_implementations(name):
    layers = architecture(name)
    assert sum(layer.params for layer in layers) == PARAMS[name]
    assert sum(layer.flops for layer in layers) / 1e9 == pytest.approx(GFLOPS[name], abs=0.01)


def test_resnet50_table_matches_the_projects_own_torch_model():
    torch = pytest.importorskip("torch")
    from backends.torch.models import resnet50

    model = resnet50()
    assert sum(p.numel() for p in model.parameters()) == PARAMS["resnet50"]
    convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(convs) == len(architecture("resnet50"))


def test_readiness_is_backward_order_split_by_flops():
    sizes, ready = readiness(architecture("vgg16"))
    assert ready[-1] == pytest.approx(1.0) and np.all(np.diff(ready) >= 0) and ready[0] > 1 / 3
    # VGG-16: fc8, fc7, fc6 first: 471.66 MiB of its 527.8 MiB, (25088·4096 + 4096² + 4096·1000 + biases)·4 bytes,
    # ready within the first 1% of backward (their FLOPs are 0.8% of the network's)
    assert sizes[:3].sum() / 2**20 == pytest.approx(471.66, abs=0.01)
    assert ready[2] - 1 / 3 < 0.01 * 2 / 3
    with pytest.raises(ValueError, match="backward_share"):
        readiness(architecture("vgg16"), backward_share=0.0)
    with pytest.raises(ValueError, match="architecture must be one of"):
        architecture("alexnet")


def test_backward_hooks_see_the_last_layer_first():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    trace = trace_backward(model, torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)), steps=3, warmup=1)
    names = [p["name"] for p in trace["params"]]
    assert set(names[:2]) == {"3.weight", "3.bias"} and set(names[2:]) == {"1.weight", "1.bias"}
    assert sum(p["bytes"] for p in trace["params"]) == 4 * sum(p.numel() for p in model.parameters())
    assert trace["forward_s"] > 0 and trace["backward_s"] >= trace["params"][-1]["ready_s"] > 0


def test_trace_command_writes_layers_json_and_refuses_to_overwrite(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "layers.json"
    assert trace_main(["--model", "mlp", "--per-worker-batch", "4", "--steps", "2", "--out", str(out)]) == 0
    trace = load_trace(out)
    assert trace["model"] == "mlp" and len(trace["params"]) == 4
    with pytest.raises(SystemExit) as exc:
        trace_main(["--model", "mlp", "--out", str(out)])
    assert exc.value.code == 2
    (tmp_path / "bad.json").write_text(json.dumps({"params": []}))
    with pytest.raises(ValueError, match="not a layer trace"):
        load_trace(tmp_path / "bad.json")
