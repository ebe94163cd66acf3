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


# The wheels that only the CUDA builds bring: torch's CUDA 13 libraries and triton, TensorFlow's CUDA 12 ones.
CUDA_ONLY = re.compile(r"^(nvidia_|cuda_|triton$)")


def test_cuda_lock_has_the_same_versions_with_gpu_builds():
    cpu, cuda = pins(ROOT / "requirements/lock.txt"), pins(ROOT / "requirements/lock-cuda.txt")
    assert cuda.pop("tensorflow") == cpu.pop("tensorflow_cpu") == "2.21.0"
    cuda_only = {name for name in cuda if CUDA_ONLY.match(name)}
    assert not any(CUDA_ONLY.match(name) for name in cpu)
    assert {name: v for name, v in cuda.items() if name not in cuda_only} == cpu and cuda["torch"] == "2.13.0"
    assert "tensorflow[and-cuda]==2.21.0" in (ROOT / "requirements/lock-cuda.txt").read_text()


def test_cuda_wheels_are_pinned_exactly():
    lines = [line.strip() for line in (ROOT / "requirements/lock-cuda.txt").read_text().splitlines()]
    requirements = [line for line in lines if line and not line.startswith("#")]
    cuda = pins(ROOT / "requirements/lock-cuda.txt")
    assert len(cuda) == len(requirements)  # every requirement is name==version, nothing looser
    assert all(re.fullmatch(r"\d+(\.\d+)+", cuda[name]) for name in cuda if CUDA_ONLY.match(name))
    # torch's own CUDA wheels, TensorFlow's, and triton (torch's compiler on Linux) are all there.
    assert {"triton", "cuda_toolkit", "nvidia_cudnn_cu13", "nvidia_nccl_cu13", "nvidia_cudnn_cu12",
            "nvidia_nccl_cu12", "nvidia_cublas_cu12"} <= set(cuda)
    # Both NCCL wheels write nvidia/nccl/lib/libnccl.so.2: the same release, whichever is installed last.
    assert cuda["nvidia_nccl_cu12"] == cuda["nvidia_nccl_cu13"] == "2.29.7"


def setup(**env):
    return subprocess.run(["bash", "scripts/setup.sh"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "SETUP_PRINT": "1", **env})


def test_one_variable_selects_the_lock():
    assert f"lock={ROOT}/requirements/lock.txt" in setup().stdout
    assert f"lock={ROOT}/requirements/lock-cuda.txt" in setup(HARNESS_LOCK="cuda").stdout
    bad = setup(HARNESS_LOCK="rocm")
    assert bad.returncode == 2 and bad.stderr.strip() == "[setup] error: HARNESS_LOCK must be cpu or cuda, got rocm"
