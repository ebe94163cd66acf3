"""The CUDA lock pins CUDA builds of the same versions as the CPU lock, selected by one variable."""

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]+\])?==(\S+)$", line.strip())
        if match:
            found[match.group(1).lower().replace("-", "_")] = match.group(3)
    return found


def test_cuda_lock_has_the_same_versions_with_gpu_builds():
    cpu, cuda = pins(ROOT / "requirements/lock.txt"), pins(ROOT / "requirements/lock-cuda.txt")
    assert cuda.pop("tensorflow") == cpu.pop("tensorflow_cpu") == "2.21.0"
    assert cuda == cpu and cuda["torch"] == "2.13.0"
    assert "tensorflow[and-cuda]==2.21.0" in (ROOT / "requirements/lock-cuda.txt").read_text()


def setup(**env):
    return subprocess.run(["bash", "scripts/setup.sh"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "SETUP_PRINT": "1", **env})


def test_one_variable_selects_the_lock():
    assert f"lock={ROOT}/requirements/lock.txt" in setup().stdout
    assert f"lock={ROOT}/requirements/lock-cuda.txt" in setup(HARNESS_LOCK="cuda").stdout
    bad = setup(HARNESS_LOCK="rocm")
    assert bad.returncode == 2 and bad.stderr.strip() == "[setup] error: HARNESS_LOCK must be cpu or cuda, got rocm"
