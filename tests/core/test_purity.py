"""The numpy core imports no framework (checked in a fresh interpreter)."""

import subprocess
import sys

FRAMEWORKS = ("torch", "tensorflow", "keras", "horovod", "pandas", "matplotlib", "yaml")


def test_importing_harness_loads_no_framework():
    code = ("import sys, harness, harness.recipe, harness.lars, harness.sgd, harness.sharding, "
            "harness.schedules, harness.scaling, harness.losses, harness.augment; "
            f"print(','.join(m for m in {FRAMEWORKS!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
