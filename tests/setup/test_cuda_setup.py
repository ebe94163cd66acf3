"""Set-up for CUDA users refuses, in one line and before any build, what would fail minutes later.

Each test runs scripts/setup.sh against a fake venv: a site-packages with only what the check reads
(torch/version.py, an nvidia-nccl wheel's files), a ``bin/pip`` that logs its arguments and, where a
test needs it, "installs" a CPU torch, and a fake CUDA toolkit whose ``nvcc --version`` says 13.0.
Nothing is installed or built, and no network is used.
"""

import hashlib
import importlib.metadata as md
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CPU_TORCH = "from typing import Optional\n\n__version__ = '2.13.0+cpu'\ncuda: Optional[str] = None\n"
CUDA_TORCH = "from typing import Optional\n\n__version__ = '2.13.0'\ncuda: Optional[str] = '13.0'\n"
# Writes a CPU torch into the venv on `pip install -r ...`, as the machine's find-links can; fails on
# `pip wheel` / `pip download`, so a run that gets past every check stops at the Horovod build.
FAKE_PIP = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/../pip.log"
case "$*" in
  *"install -q -r"*) mkdir -p "$SITE/torch" && printf '%s' "$TORCH_AFTER_PIP" > "$SITE/torch/version.py" ;;
  *wheel* | *download*) exit 3 ;;
esac
"""


def fake_venv(tmp_path: Path, *, torch: str | None = None, nccl_wheel: bool = False,
              stamped_lock: str | None = None) -> Path:
    """A venv directory with a fake pip and python; ``torch`` is version.py's text, or None for none."""
    venv = tmp_path / "venv"
    site = venv / "lib/python3.11/site-packages"
    site.mkdir(parents=True)
    (venv / "bin").mkdir()
    (venv / "bin/pip").write_text(FAKE_PIP)
    (venv / "bin/python").write_text("#!/bin/sh\nexit 7\n")
    for exe in ("pip", "python"):
        (venv / "bin" / exe).chmod(0o755)
    if torch is not None:
        (site / "torch").mkdir()
        (site / "torch/version.py").write_text(torch)
    if nccl_wheel:
        (site / "nvidia/nccl/include").mkdir(parents=True)
        (site / "nvidia/nccl/lib").mkdir(parents=True)
        (site / "nvidia/nccl/include/nccl.h").write_text("#define NCCL_MAJOR 2\n")
        (site / "nvidia/nccl/lib/libnccl.so.2").write_text("")
    if stamped_lock:  # packages up to date for this lock: set-up installs nothing
        stamped = (stamped_lock, "pyproject.toml", "setup.py", "harness/runtime/_jpegwindow.c")  # as setup.sh hashes
        digest = hashlib.sha256(b"".join((ROOT / name).read_bytes() for name in stamped))
        (venv / ".lock.sha256").write_text(digest.hexdigest() + "\n")
    return venv


def fake_cuda(tmp_path: Path, release: str = "13.0") -> Path:
    home = tmp_path / "cuda"
    (home / "bin").mkdir(parents=True)
    nvcc = home / "bin/nvcc"
    nvcc.write_text(f'#!/bin/sh\ncase "$*" in *--version*) echo "Cuda compilation tools, release {release}, '
                    f'V{release}.1";; esac\n')
    nvcc.chmod(0o755)
    return home


def setup(venv: Path, tmp_path: Path, torch_after_pip: str = "", **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("HOROVOD_", "HARNESS_", "SETUP_", "CUDA_"))}
    clean.update(VENV=str(venv), SITE=str(venv / "lib/python3.11/site-packages"), TORCH_AFTER_PIP=torch_after_pip,
                 XDG_CACHE_HOME=str(tmp_path / "cache"), TMPDIR=str(tmp_path), **env)
    return subprocess.run(["bash", "scripts/setup.sh"], cwd=ROOT, capture_output=True, text=True, env=clean,
                          timeout=60)


def pip_calls(venv: Path) -> list[str]:
    log = venv / "pip.log"
    return log.read_text().splitlines() if log.exists() else []


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("[setup] error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize("how", ["version.py", "dist-info"])
def test_cuda_lock_refuses_a_venv_with_the_cpu_torch_before_installing(tmp_path, how):
    venv = fake_venv(tmp_path, torch=CPU_TORCH if how == "version.py" else None)
    if how == "dist-info":
        (venv / "lib/python3.11/site-packages/torch-2.13.0+cpu.dist-info").mkdir()
    error = one_line_error(setup(venv, tmp_path, HARNESS_LOCK="cuda", CUDA_HOME=str(fake_cuda(tmp_path))))
    assert "has the CPU build of torch" in error and "VENV=.venv-cuda HARNESS_LOCK=cuda make setup" in error
    assert pip_calls(venv) == []


def test_cuda_lock_refuses_a_cpu_torch_that_pip_installed(tmp_path):
    venv = fake_venv(tmp_path)
    proc = setup(venv, tmp_path, torch_after_pip=CPU_TORCH, HARNESS_LOCK="cuda", CUDA_HOME=str(fake_cuda(tmp_path)))
    assert "pip installed the CPU build of torch from lock-cuda.txt" in one_line_error(proc)
    assert pip_calls(venv) == [f"install -q -r {ROOT}/requirements/lock-cuda.txt", f"install -q --no-deps -e {ROOT}"]


def test_cpu_lock_over_a_cuda_torch_warns_and_goes_on(tmp_path):
    venv = fake_venv(tmp_path, torch=CUDA_TORCH)
    proc = setup(venv, tmp_path, torch_after_pip=CUDA_TORCH)
    assert "[setup] warning: " in proc.stdout and "CUDA 13.0 build of torch" in proc.stdout
    assert "building Horovod" in proc.stdout  # it went on: the fake pip then fails the build
    assert pip_calls(venv)[0] == f"install -q -r {ROOT}/requirements/lock.txt"


def test_nccl_build_refuses_without_nccl(tmp_path):
    if Path("/usr/include/nccl.h").exists() or Path("/usr/local/include/nccl.h").exists():
        pytest.skip("this machine has a system NCCL, which the build would use")
    venv = fake_venv(tmp_path, torch=CUDA_TORCH, stamped_lock="requirements/lock-cuda.txt")
    error = one_line_error(setup(venv, tmp_path, HARNESS_LOCK="cuda", CUDA_HOME=str(fake_cuda(tmp_path))))
    assert error.startswith("[setup] error: HOROVOD_GPU_OPERATIONS=NCCL: no NCCL")
    assert pip_calls(venv) == [] and not (tmp_path / "cache").exists()


def test_nccl_build_refuses_a_cpu_torch_a_missing_nvcc_home_and_a_cuda_mismatch(tmp_path):
    cpu = fake_venv(tmp_path / "a", torch=CPU_TORCH, stamped_lock="requirements/lock.txt")
    proc = setup(cpu, tmp_path, HOROVOD_GPU_OPERATIONS="NCCL", CUDA_HOME=str(fake_cuda(tmp_path)))
    assert "needs a CUDA build of torch" in one_line_error(proc)
    venv = fake_venv(tmp_path / "b", torch=CUDA_TORCH, nccl_wheel=True, stamped_lock="requirements/lock-cuda.txt")
    proc = setup(venv, tmp_path, HARNESS_LOCK="cuda", HOROVOD_CUDA_HOME=str(tmp_path / "nowhere"))
    assert f"HOROVOD_CUDA_HOME={tmp_path / 'nowhere'} has no bin/nvcc" in one_line_error(proc)
    proc = setup(venv, tmp_path, HARNESS_LOCK="cuda", CUDA_HOME=str(fake_cuda(tmp_path / "old", "12.9")))
    assert "is CUDA 12.9 but torch was built for CUDA 13.0" in one_line_error(proc)
    assert pip_calls(cpu) == pip_calls(venv) == []


def test_nccl_from_the_wheel_passes_every_check_and_reaches_the_build(tmp_path):
    venv = fake_venv(tmp_path, torch=CUDA_TORCH, nccl_wheel=True, stamped_lock="requirements/lock-cuda.txt")
    lib = venv / "lib/python3.11/site-packages/nvidia/nccl/lib"
    proc = setup(venv, tmp_path, HARNESS_LOCK="cuda", CUDA_HOME=str(fake_cuda(tmp_path)))
    assert f"NCCL from the wheel: {lib.parent / 'include'}, {lib}" in proc.stdout
    assert "building Horovod" in proc.stdout  # past every check: the fake pip then fails the build
    assert os.readlink(lib / "libnccl.so") == "libnccl.so.2"


def plan(venv: Path, tmp_path: Path, **env: str) -> dict[str, str]:
    proc = setup(venv, tmp_path, SETUP_PRINT="1", **env)
    assert proc.returncode == 0, proc.stderr
    return dict(line.split("=", 1) for line in proc.stdout.splitlines())


def test_cuda_lock_implies_nccl_found_in_the_wheel(tmp_path):
    venv = fake_venv(tmp_path, torch=CUDA_TORCH, nccl_wheel=True)
    site = venv / "lib/python3.11/site-packages"
    cuda = fake_cuda(tmp_path)
    shown = plan(venv, tmp_path, HARNESS_LOCK="cuda", CUDA_HOME=str(cuda))
    assert shown["gpu_operations"] == "NCCL" and shown["torch"] == "13.0"
    assert shown["nvcc"] == f"{cuda}/bin/nvcc (CUDA 13.0)"
    assert (shown["nccl_include"], shown["nccl_lib"], shown["nccl_from"]) == (
        f"{site}/nvidia/nccl/include", f"{site}/nvidia/nccl/lib", "wheel")
    assert not (site / "nvidia/nccl/lib/libnccl.so").exists()  # the print mode changes nothing


def test_the_users_gpu_operations_and_nccl_home_win(tmp_path):
    venv = fake_venv(tmp_path, torch=CUDA_TORCH, nccl_wheel=True)
    cuda = str(fake_cuda(tmp_path))
    assert plan(venv, tmp_path, HARNESS_LOCK="cuda", HOROVOD_GPU_OPERATIONS="", CUDA_HOME=cuda)["gpu_operations"] == "none"
    assert plan(venv, tmp_path, HARNESS_LOCK="cuda", HOROVOD_GPU_OPERATIONS="MPI")["gpu_operations"] == "MPI"
    assert plan(venv, tmp_path)["gpu_operations"] == "none"
    home = tmp_path / "nccl"
    (home / "include").mkdir(parents=True)
    (home / "include/nccl.h").write_text("")
    (home / "lib").mkdir()
    (home / "lib/libnccl.so.2").write_text("")
    shown = plan(venv, tmp_path, HARNESS_LOCK="cuda", CUDA_HOME=cuda, HOROVOD_NCCL_HOME=str(home))
    assert shown["nccl"].startswith(f"not found: {home}/lib has libnccl.so.2 but no libnccl.so")
    (home / "lib/libnccl.so").symlink_to("libnccl.so.2")
    shown = plan(venv, tmp_path, HARNESS_LOCK="cuda", CUDA_HOME=cuda, HOROVOD_NCCL_HOME=str(home))
    assert (shown["nccl_include"], shown["nccl_lib"], shown["nccl_from"]) == (f"{home}/include", f"{home}/lib", "user")


def test_records_name_the_installed_tensorflow_and_the_torch_build():
    code = ("import sys; from harness.runtime.records import environment; v = environment()['versions']; "
            "assert 'torch' not in sys.modules; print(sorted(v)); print(v['torch.version.cuda'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    names, cuda = out.splitlines()
    for dist in ("tensorflow", "tensorflow-cpu"):
        try:
            md.version(dist)
        except md.PackageNotFoundError:
            assert f"'{dist}'" not in names
        else:
            assert f"'{dist}'" in names
    import torch

    assert cuda == str(torch.version.cuda)
