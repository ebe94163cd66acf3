"""The user's own training scripts in ``examples/`` under ``horovodrun -np 2``: ranks in sync, LRs in closed form."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.recipe import Recipe
from tests.conftest import ROOT

pytestmark = pytest.mark.parallel
HOROVODRUN = [str(Path(sys.executable).parent / "horovodrun"), "-np", "2", "-H", "localhost:2", "--gloo"]


@pytest.mark.parametrize("script", ["torch_train.py", "keras_fit.py"])
def test_example_keeps_ranks_in_sync_and_follows_the_recipe_lr(tmp_path, launched, script):
    proc = launched([*HOROVODRUN, sys.executable, str(ROOT / "examples" / script), "--out", str(tmp_path)],
                    timeout=120)
    assert proc.returncode == 0, proc.output
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0]["params_sha256"] == ranks[1]["params_sha256"]
    recipe = Recipe.from_dict(ranks[0]["recipe"])
    assert recipe.world_size == 2 and recipe.warmup_steps > 0 and recipe.peak_lr == pytest.approx(0.2)
    for rank in ranks:
        assert len(rank["lrs"]) == recipe.total_steps
        np.testing.assert_allclose(rank["lrs"], recipe.lr(np.arange(recipe.total_steps)), rtol=1e-6)
    if script == "keras_fit.py":  # rank 0 only wrote the CSV log, from metrics averaged over ranks
        assert (tmp_path / "history.csv").read_text().count("\n") == 1 + int(recipe.epochs)
    else:
        assert "epoch 2: loss" in proc.output


def test_the_image_example_reads_a_folder_with_the_pipeline_and_keeps_ranks_in_sync(tmp_path, launched):
    from tests.runtime.test_images import make_folder

    folder = make_folder(tmp_path / "imgs", per_class=16, val_per_class=3)
    proc = launched([*HOROVODRUN, sys.executable, str(ROOT / "examples" / "torch_images.py"), "--data", str(folder),
                     "--out", str(tmp_path / "out")], timeout=120)
    assert proc.returncode == 0, proc.output
    ranks = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["params_sha256"] == ranks[1]["params_sha256"]
    recipe = Recipe.from_dict(ranks[0]["recipe"])
    assert recipe.dataset_size == 48 and recipe.total_steps == 2 * 48 // 16
    np.testing.assert_allclose(ranks[0]["lrs"], recipe.lr(np.arange(recipe.total_steps)), rtol=1e-6)
    assert ranks[0]["validated"] == 9 and "epoch 1: loss" in proc.output  # every val image once, over both ranks
