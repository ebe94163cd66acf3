"""Recipe: presets, derived quantities, serialisation round trips and every validation path."""

import dataclasses
import json

import numpy as np
import pytest

from harness.recipe import PRESETS, Recipe, goyal2017_resnet50, you2017_lars_resnet50


def test_goyal_preset_is_the_paper_recipe():
    r = goyal2017_resnet50()
    assert (r.global_batch, r.world_size, r.per_worker_batch) == (8192, 256, 32)
    assert r.peak_lr == pytest.approx(3.2)
    assert (r.momentum, r.weight_decay, r.epochs, r.milestones_epochs) == (0.9, 1e-4, 90.0, (30.0, 60.0, 80.0))
    assert r.dataset_size == 1_281_167 and r.warmup_epochs == 5 and r.warmup == "gradual"
    assert r.total_steps == 90 * 156 and r.warmup_steps == 780


def test_lars_preset_uses_poly2_and_trust_coefficient_0_001():
    r = you2017_lars_resnet50()
    assert (r.global_batch, r.optimizer, r.decay, r.poly_power, r.trust_coefficient) == (32768, "lars", "poly", 2.0, 0.001)
    assert r.lr(r.warmup_steps) == pytest.approx(r.peak_lr)
    assert r.lr(r.total_steps) == 0.0
    half = r.warmup_steps + (r.total_steps - r.warmup_steps) // 2
    assert r.lr(half) == pytest.approx(r.peak_lr * (1 - (half - r.warmup_steps) / (r.total_steps - r.warmup_steps)) ** 2)


def test_global_batch_counts_accumulation():
    r = Recipe(world_size=4, per_worker_batch=16, accumulation_steps=2, dataset_size=60000, epochs=3,
               warmup_epochs=1, milestones_epochs=(2,))
    assert r.global_batch == 128 and r.peak_lr == pytest.approx(0.05) and r.steps_per_epoch == 468


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_round_trip_dict_json_yaml(name, tmp_path):
    r = PRESETS[name]()
    assert Recipe.from_dict(r.to_dict()) == r
    assert Recipe.from_json(r.to_json()) == r
    assert Recipe.from_yaml(r.to_yaml()) == r
    (tmp_path / "r.yaml").write_text(r.to_yaml())
    (tmp_path / "r.json").write_text(r.to_json())
    assert Recipe.load(tmp_path / "r.yaml") == Recipe.load(tmp_path / "r.json") == r


def test_lr_is_vectorised_and_equals_the_schedule():
    r = goyal2017_resnet50()
    steps = np.arange(0, r.total_steps, 37)
    np.testing.assert_array_equal(r.lr(steps), [r.lr(int(s)) for s in steps])


def test_multiplier_is_the_lr_over_the_peak_lr():
    r = goyal2017_resnet50()
    steps = np.array([0, 1, r.warmup_steps, r.warmup_steps + 1, r.total_steps - 1])
    np.testing.assert_allclose(r.multiplier(steps), r.lr(steps) / 3.2, rtol=1e-15)
    assert r.multiplier(0) == pytest.approx(0.1 / 3.2) and r.multiplier(r.warmup_steps) == pytest.approx(1.0)
    assert r.multiplier(r.total_steps - 1) == pytest.approx(1e-3)  # after the three ÷10 drops


def test_constant_warmup_recipe_holds_reference_lr_then_jumps():
    r = goyal2017_resnet50().replace(warmup="constant")
    assert r.lr(0) == r.lr(779) == 0.1 and r.lr(780) == pytest.approx(3.2)


# Each row: field, bad value, and a fragment of the message. Every validation path of Recipe.
BAD = [
    ("name", "", "name"), ("reference_lr", 0.0, "reference_lr"), ("reference_lr", float("nan"), "reference_lr"),
    ("reference_batch", 0, "reference_batch"), ("world_size", 0, "world_size"), ("world_size", 2.0, "world_size"),
    ("per_worker_batch", -1, "per_worker_batch"), ("accumulation_steps", 0, "accumulation_steps"),
    ("dataset_size", 0, "dataset_size"), ("dataset_size", 100, "global batch"), ("epochs", 0, "epochs"),
    ("scaling_rule", "cubic", "scaling_rule"), ("warmup", "slow", "warmup"), ("warmup_epochs", -1, "warmup_epochs"),
    ("warmup_epochs", 95, "warmup_epochs"), ("warmup_epochs", 0.001, "one step"),
    ("warmup_start_lr", -0.1, "warmup_start_lr"), ("decay", "exp", "decay"),
    ("milestones_epochs", (60, 30), "milestones"), ("milestones_epochs", (3, 60), "after warmup"),
    ("milestones_epochs", (30, 95), "milestones"), ("milestones_epochs", (), "non-empty"),
    ("milestones_epochs", (30.0, 30.001), "distinct steps"),
    ("decay_factor", 0.0, "decay_factor"), ("decay_factor", 2.0, "decay_factor"), ("poly_power", 0, "poly_power"),
    ("end_lr", -1.0, "end_lr"), ("optimizer", "adam", "optimizer"), ("momentum", 1.0, "momentum"),
    ("momentum", -0.1, "momentum"), ("weight_decay", -1e-4, "weight_decay"), ("nesterov", "yes", "nesterov"),
    ("trust_coefficient", 0.0, "trust_coefficient"), ("lars_eps", -1.0, "lars_eps"),
    ("trust_clip", 1, "trust_clip"), ("momentum_correction", None, "momentum_correction"),
    ("decay_steps_offset", -1, "decay_steps_offset"), ("decay_steps_offset", 1.0, "decay_steps_offset"),
    ("label_smoothing", 1.0, "label_smoothing"), ("label_smoothing", -0.1, "label_smoothing"),
]


@pytest.mark.parametrize("field, value, match", BAD, ids=[f"{f}={v!r}" for f, v, _ in BAD])
def test_every_bad_field_raises_value_error_naming_it(field, value, match):
    with pytest.raises(ValueError, match=match) as info:
        dataclasses.replace(goyal2017_resnet50(), **{field: value})
    assert f"Recipe.{field}" in str(info.value)


def test_every_field_has_a_validation_row():
    checked = {f for f, _, _ in BAD}
    assert checked == {f.name for f in dataclasses.fields(Recipe)}


def test_unknown_keys_malformed_text_and_extensions():
    with pytest.raises(ValueError, match="unknown recipe field.*learning_rate"):
        Recipe.from_dict({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="not valid JSON"):
        Recipe.from_json("{oops")
    with pytest.raises(ValueError, match="not valid YAML"):
        Recipe.from_yaml("a: [1, 2")
    with pytest.raises(ValueError, match="mapping"):
        Recipe.from_yaml("- 1\n- 2\n")
    with pytest.raises(ValueError, match=".json, .yaml"):
        Recipe.load(__file__)
    assert json.loads(goyal2017_resnet50().to_json())["reference_lr"] == 0.1


def test_presets_reject_a_batch_that_does_not_divide():
    with pytest.raises(ValueError, match="multiple of 32"):
        goyal2017_resnet50(1000)


@pytest.mark.parametrize("decay", ["poly", "cosine"])
def test_decay_steps_offset_lengthens_the_decay_so_it_never_reaches_end_lr(decay):
    r = Recipe(reference_lr=0.1, reference_batch=10, per_worker_batch=10, dataset_size=1000, epochs=2, warmup="none",
               decay=decay, end_lr=0.001, decay_steps_offset=1)
    assert (r.total_steps, r.decay_steps) == (200, 201)
    expected = (0.1 - 0.001) * (1 / 201) ** 2 + 0.001 if decay == "poly" else \
        0.001 + 0.5 * (0.1 - 0.001) * (1 + np.cos(np.pi * 200 / 201))
    assert r.lr(200) == pytest.approx(expected, rel=1e-12) and r.lr(200) > r.replace(decay_steps_offset=0).lr(200)
