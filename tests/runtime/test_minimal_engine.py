"""The Engine protocol is the whole contract: the training loop runs with an engine that implements exactly
the protocol (numpy softmax regression, k = 1, no Horovod, no framework) and nothing else."""

import inspect
import json

import numpy as np
import pytest

from harness.datasets import synthetic
from harness.errors import NonFiniteError
from harness.recipe import Recipe
from harness.runtime.checkpoint import CHECKPOINT, load_checkpoint
from harness.runtime.config import RunConfig
from harness.runtime.engine import Engine
from harness.runtime.loop import Trainer
from harness.runtime.source import ArraySource
from harness.sgd import sgd_step


class NumpyEngine:
    """Softmax regression with momentum SGD in numpy: one rank, collectives are the identity."""

    name, rank, size, local_rank, threads = "numpy", 0, 1, 0, 1

    def __init__(self, nonfinite: str = "stop"):
        self.nonfinite, self.nonfinite_skipped, self.loss_scale_skips = nonfinite, 0, 0
        self.params = self.velocities = None

    def build(self, recipe, *, model, input_shape, num_classes, seed, fp16_allreduce=False, broadcast=True):
        rng = np.random.default_rng(seed)
        features = int(np.prod(input_shape))
        self.recipe, self.step_count = recipe, 0
        self.params = [rng.normal(scale=0.01, size=(features, num_classes)), np.zeros(num_classes)]
        self.velocities = [np.zeros_like(p) for p in self.params]

    @property
    def lr(self):
        return float(self.recipe.lr(self.step_count))

    def prepare(self, micro_batches):
        return micro_batches

    def _logits(self, x):
        return x.reshape(len(x), -1) @ self.params[0] + self.params[1]

    def train_step(self, micro_batches):
        grads, losses = [np.zeros_like(p) for p in self.params], []
        for x, y in micro_batches:
            flat = x.reshape(len(x), -1).astype(np.float64)
            p = _softmax(self._logits(x))
            losses.append(float(-np.log(p[np.arange(len(y)), y]).mean()))
            p[np.arange(len(y)), y] -= 1
            grads[0] += flat.T @ p / len(y) / len(micro_batches)
            grads[1] += p.sum(axis=0) / len(y) / len(micro_batches)
        if not all(np.isfinite(g).all() for g in grads):
            if self.nonfinite == "stop":
                raise NonFiniteError("non-finite gradient: the step was not applied")
            self.nonfinite_skipped += 1
            return float(np.mean(losses))
        self.params, self.velocities = sgd_step(self.params, grads, self.velocities, lr=self.lr,
                                                momentum=self.recipe.momentum)
        self.step_count += 1
        return float(np.mean(losses))

    def synchronize(self):
        pass

    def check_pending(self):
        pass

    def evaluate(self, x, y):
        p = _softmax(self._logits(x))
        return np.array([-np.log(p[np.arange(len(y)), y]).sum(), (p.argmax(1) == y).sum(), len(y)], dtype=np.float64)

    def allreduce_sum(self, values):
        return np.asarray(values, dtype=np.float64)

    def allgather_object(self, obj):
        return [obj]

    def broadcast_object(self, obj, root_rank=0):
        return obj

    def flat_parameters(self):
        return np.concatenate([p.ravel() for p in self.params])

    def horovod_settings(self):
        return {"controller": None, "nccl_built": False, "cuda_built": False, "gpu_operations": None}

    def device_info(self):
        return {"type": "cpu", "name": "cpu", "count_per_node": 1, "precision": "fp32", "channels_last": False}

    def get_state(self):
        return {"params": [p.copy() for p in self.params], "velocities": [v.copy() for v in self.velocities],
                "step": self.step_count}

    def set_state(self, state):
        self.params, self.velocities, self.step_count = state["params"], state["velocities"], state["step"]

    def shutdown(self):
        pass


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _protocol_members() -> set[str]:
    declared = {name for name, _ in inspect.getmembers(Engine) if not name.startswith("_")}
    return declared | set(Engine.__annotations__)


def test_the_minimal_engine_implements_exactly_the_protocol():
    public = {name for name in dir(NumpyEngine("stop")) if not name.startswith("_")} - {"params", "velocities",
                                                                                        "recipe", "step_count",
                                                                                        "nonfinite"}
    assert public == _protocol_members()
    engine = NumpyEngine()
    engine.build(_recipe(), model="softmax", input_shape=(1, 4, 4), num_classes=3,
                 seed=0)
    assert isinstance(engine, Engine)  # built: its lr exists


def _recipe() -> Recipe:
    return Recipe(name="minimal", reference_lr=0.5, reference_batch=8, world_size=1, per_worker_batch=8,
                  dataset_size=96, epochs=2.0, warmup_epochs=0.5, decay="poly", accumulation_steps=2)


def _train(out, *, max_steps=None, checkpoint_steps=0, start=None, engine=None, source=None):
    data = synthetic(train_size=96, test_size=24, input_shape=(1, 4, 4), num_classes=3, seed=0)
    recipe = _recipe()
    engine = engine or NumpyEngine()
    engine.build(recipe, model="softmax", input_shape=(1, 4, 4), num_classes=3, seed=0)
    config = RunConfig(out=out, model="softmax", max_steps=max_steps, checkpoint_steps=checkpoint_steps,
                       timing_skip=1, save_params=True)
    out.mkdir(parents=True, exist_ok=True)
    if start:
        meta, state = load_checkpoint(out / CHECKPOINT)
        engine.set_state(state)
        start = {key: meta[key] for key in ("step", "epoch", "batch")}
    return Trainer(engine, recipe, source or ArraySource(data, seed=0), config, start).run(), engine


def test_the_loop_trains_writes_records_and_a_summary_with_the_minimal_engine(tmp_path):
    summary, engine = _train(tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["kind"] for r in records][0] == "run" and len(epochs) == 2
    assert [r["step"] for r in steps] == list(range(12))  # 96 images / (8 × 2 accumulation) = 6 steps an epoch
    assert all(r["images"] == 16 and r["step_time_s"] > 0 for r in steps)
    np.testing.assert_allclose([r["lr"] for r in steps], _recipe().lr(np.arange(12)))
    assert summary["steps"] == 12 and summary["epochs"] == 2 and summary["ranks_in_sync"]
    assert summary["global_batch"] == 16 and summary["backend"] == "numpy" and summary["timed_steps"] == 11
    assert summary == json.loads((tmp_path / "run" / "summary.json").read_text())
    assert epochs[1]["train_loss"] < epochs[0]["train_loss"] and summary["test_accuracy"] > 1 / 3  # it learns


def test_a_run_resumed_mid_epoch_ends_with_the_parameters_of_an_uninterrupted_one(tmp_path):
    straight, _ = _train(tmp_path / "straight")
    _train(tmp_path / "cut", max_steps=4, checkpoint_steps=4)  # stops at step 4: epoch 0, batch 4 of 6
    meta, _ = load_checkpoint(tmp_path / "cut" / CHECKPOINT)
    assert (meta["step"], meta["epoch"], meta["batch"]) == (4, 0, 4)
    resumed, _ = _train(tmp_path / "cut", start=True)
    np.testing.assert_array_equal(np.load(tmp_path / "cut" / "params.npy"), np.load(tmp_path / "straight" / "params.npy"))
    assert resumed["resumed_from_step"] == 4 and resumed["steps"] == straight["steps"] == 12


def test_a_nan_stops_the_loop_before_the_update_and_names_the_failing_step(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_FAULT", "0:3:nan")
    with pytest.raises(NonFiniteError):
        _train(tmp_path / "nan")
    assert json.loads((tmp_path / "nan" / "failure-rank0.json").read_text())["step"] == 3
