"""One public API: both backends export the same names with the same keyword-only hyperparameters,
``backends.keras`` imports lazily, and the README shows the examples and the names as they are."""

import inspect
import os
import re
import subprocess
import sys

import pytest

import backends.keras as keras_api
import backends.torch as torch_api
from tests.conftest import ROOT

SHARED = {"LARS", "MomentumSGD", "RecipeLR", "bias_and_norm", "DistributedOptimizer", "broadcast_initial_state",
          "metric_average", "normalize_images", "pin_gpu", "rank0_only"}
ONLY = {"torch": {"param_groups", "zero_gamma_init"}, "keras": {"BroadcastInitialVariables", "MetricAverage"}}
# Arguments that belong to one framework: torch's params/lr/foreach, Keras's learning_rate/exclude/name.
FRAMEWORK_ARGS = {"params", "lr", "foreach", "learning_rate", "exclude", "name", "kwargs", "named_parameters",
                  "backward_passes_per_step"}
# torch's LRScheduler wraps an optimizer and can start at a step; a Keras schedule is handed to one.
OWN_ARGS = {"RecipeLR": {"optimizer", "last_epoch"}}


def test_both_backends_export_the_same_names_for_the_same_things():
    assert set(torch_api.__all__) == SHARED | ONLY["torch"]
    assert set(keras_api.__all__) == SHARED | ONLY["keras"]
    for api in (torch_api, keras_api):
        assert all(getattr(api, name) is not None for name in api.__all__)


@pytest.mark.parametrize("name", sorted(SHARED))
def test_shared_names_take_the_same_arguments_with_the_same_defaults(name):
    def arguments(obj):
        signature = inspect.signature(obj)
        skip = FRAMEWORK_ARGS | OWN_ARGS.get(name, set())
        return {p.name: (p.kind, p.default) for p in signature.parameters.values() if p.name not in skip}

    torch_args, keras_args = arguments(getattr(torch_api, name)), arguments(getattr(keras_api, name))
    assert torch_args == keras_args
    hyper = {n for n, (kind, _) in torch_args.items() if kind is inspect.Parameter.KEYWORD_ONLY}
    if name in ("LARS", "MomentumSGD"):
        assert {"momentum", "weight_decay", "nesterov", "momentum_correction"} <= hyper


def test_the_exclusion_rule_is_the_same_in_both():
    for shape, excluded in (((10,), True), ((), True), ((10, 64), False), ((3, 3, 1, 16), False)):
        assert torch_api.bias_and_norm("w", shape) is keras_api.bias_and_norm("w", shape) is excluded
    assert inspect.signature(torch_api.param_groups).parameters["exclude"].default is torch_api.bias_and_norm
    assert inspect.signature(keras_api.LARS).parameters["exclude"].default is keras_api.bias_and_norm


def test_importing_backends_keras_is_cheap_and_its_names_load_on_use():
    code = ("import sys, backends.keras as api\n"
            "heavy = [m for m in ('tensorflow', 'keras', 'horovod') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "from backends.keras import LARS\n"
            "assert LARS.__module__ == 'backends.keras.optim' and 'tensorflow' in sys.modules\n"
            "assert api.RecipeLR.__name__ == 'RecipeLR' and 'RecipeLR' in dir(api)\n"
            "try:\n    api.Nothing\nexcept AttributeError as exc:\n    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "module 'backends.keras' has no attribute 'Nothing'"


def _section(page: str, title: str) -> str:
    text = (ROOT / page).read_text(encoding="utf-8") + "\n## "
    start = text.index(f"\n## {title}\n")
    return text[start:text.index("\n## ", start + 1)]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_the_docs_code_blocks_are_the_example_files():
    files = [(ROOT / "examples" / name).read_text(encoding="utf-8") for name in ("torch_train.py", "keras_fit.py")]
    assert _python_blocks(_section("docs/api.md", "Use the recipe in your own training script")) == files
    assert _python_blocks(_section("README.md", "The recipe in your own script")) == files[:1]


def test_the_api_table_lists_each_backends_public_names():
    rows = [line.split("|")[1:3] for line in _section("docs/api.md", "Public API: the same names in both backends")
            .splitlines() if line.startswith("| `") or line.startswith("| —")]
    names = [{name for cell in column for name in re.findall(r"`(\w+)`", cell)} for column in zip(*rows)]
    assert names == [set(torch_api.__all__), set(keras_api.__all__)]


def test_every_docs_page_is_linked_from_the_readme_and_links_resolve():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert pages and all(f"(docs/{page})" in readme for page in pages)
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(((?:docs/)?[\w./-]+\.md)\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).exists() or (ROOT / target).exists(), f"{page.name}: {target}"
