"""uint8 images from the input pipeline: normalised on the device equal to the core's reference, and the
same crops reach a torch run and a Keras run (both engines start Horovod: each in a process of its own)."""

import hashlib

import numpy as np
import pytest

from harness.augment import IMAGENET_MEAN, IMAGENET_STD, normalize
from harness.recipe import Recipe
from tests.conftest import in_own_process
from tests.runtime.test_images import make_folder


def _uint8_equals_float(backend):
    from backends import make_engine

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    y = rng.integers(0, 5, 8)
    recipe = Recipe(per_worker_batch=8, dataset_size=64, epochs=1.0, warmup="none", decay="none")
    out = {}
    for kind, batch in (("uint8", x), ("float", normalize(x, IMAGENET_MEAN, IMAGENET_STD))):
        engine = make_engine(backend, threads=1, device="cpu")
        engine.build(recipe, model="mlp", input_shape=(3, 16, 16), num_classes=5, seed=0,
                     input_normalization=(IMAGENET_MEAN, IMAGENET_STD))
        before = engine.evaluate(batch, y)
        loss = float(engine.train_step(engine.prepare([(batch, y)])))
        out[kind] = (before, loss, engine.flat_parameters())
    return out


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_uint8_images_are_normalised_on_the_device_as_the_core_says(backend):
    out = in_own_process(_uint8_equals_float, backend)
    np.testing.assert_allclose(out["uint8"][0], out["float"][0], rtol=1e-5)
    assert out["uint8"][1] == pytest.approx(out["float"][1], rel=1e-5)
    np.testing.assert_allclose(out["uint8"][2], out["float"][2], rtol=1e-5, atol=1e-6)


def _batches_seen(backend, folder, out):
    from backends import make_engine
    from harness.runtime.config import DataConfig, RecipeSpec, RunConfig
    from harness.runtime.train import run_training

    seen = []

    def recording_engine(*args, **kwargs):
        engine = make_engine(*args, **kwargs)
        prepare = engine.prepare

        def record(micro_batches):
            seen.append([hashlib.sha256(x.tobytes()).hexdigest() + hashlib.sha256(y.tobytes()).hexdigest()
                         for x, y in micro_batches])
            return prepare(micro_batches)

        engine.prepare = record
        return engine

    config = RunConfig(out=out, backend=backend, model="mlp", threads=1, max_steps=4, timing_skip=0,
                       data=DataConfig(source=str(folder), image_size=16, data_workers=1))
    spec = RecipeSpec(changes={"per_worker_batch": 4, "epochs": 4, "warmup_epochs": 1, "milestones_epochs": [2]})
    _, summary = run_training(config, spec, recording_engine)
    return seen, summary["input"]


def test_a_torch_run_and_a_keras_run_see_the_same_crops(tmp_path):
    folder = make_folder(tmp_path / "imgs")
    torch_seen, account = in_own_process(_batches_seen, "torch", folder, tmp_path / "t")
    keras_seen, _ = in_own_process(_batches_seen, "keras", folder, tmp_path / "k")
    assert len(torch_seen) == 4 and torch_seen == keras_seen
    assert account["data_workers"] == 1 and account["bad_images_skipped"] == 0
    assert 0 <= account["data_wait_share"] < 1 and account["pipeline_images_per_s_per_rank"] > 0
