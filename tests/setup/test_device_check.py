"""scripts/device_check.sh decides, in its dry run, the build, tests, benchmarks and budget for a GPU machine.

The machine is faked: a site-packages on PYTHONPATH with a CUDA torch's version.py and an nvidia-nccl
wheel's files, and a CUDA toolkit whose nvcc says 13.0. Nothing is built or run.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLAGS = ["HOROVOD_WITH_PYTORCH=1", "HOROVOD_WITHOUT_TENSORFLOW=1", "HOROVOD_WITHOUT_MPI=1", "HOROVOD_WITH_GLOO=1",
         "HOROVOD_WITHOUT_MXNET=1", "HOROVOD_GPU_OPERATIONS=NCCL"]


def gpu_machine(tmp_path: Path) -> tuple[Path, Path]:
    site = tmp_path / "site"
    (site / "torch").mkdir(parents=True)
    (site / "torch/__init__.py").write_text("")
    (site / "torch/version.py").write_text("__version__ = '2.13.0'\ncuda: Optional[str] = '13.0'\n")
    for sub in ("include", "lib"):
        (site / "nvidia/nccl" / sub).mkdir(parents=True)
    (site / "nvidia/nccl/include/nccl.h").write_text("")
    (site / "nvidia/nccl/lib/libnccl.so.2").write_text("")
    cuda = tmp_path / "cuda"
    (cuda / "bin").mkdir(parents=True)
    (cuda / "bin/nvcc").write_text('#!/bin/sh\necho "Cuda compilation tools, release 13.0, V13.0.88"\n')
    (cuda / "bin/nvcc").chmod(0o755)
    return site, cuda


def dry_run(**env: str) -> tuple[dict[str, str], list[str]]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("HOROVOD_", "CUDA_", "DEVICE_", "PYTHON")) and k != "OUT"}
    proc = subprocess.run(["bash", "scripts/device_check.sh"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**clean, "DEVICE_CHECK_DRY": "1", "PYTHON": sys.executable, **env})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    return dict(line.split("=", 1) for line in lines), [line.split("=", 1)[1] for line in lines if line.startswith("bench=")]


def test_dry_run_plans_an_nccl_build_for_this_gpu_only(tmp_path):
    site, cuda = gpu_machine(tmp_path)
    plan, _ = dry_run(PYTHONPATH=str(site), CUDA_HOME=str(cuda), DEVICE_CHECK_CC="90", OUT=str(tmp_path / "out"))
    assert (plan["torch_site"], plan["torch"]) == (str(site), "13.0")
    assert plan["nvcc"] == f"{cuda}/bin/nvcc (CUDA 13.0)"
    assert (plan["nccl_include"], plan["nccl_lib"], plan["nccl_from"]) == (
        f"{site}/nvidia/nccl/include", f"{site}/nvidia/nccl/lib", "wheel")
    assert plan["build_env"].split() == [*FLAGS, "HOROVOD_BUILD_CUDA_CC_LIST=90",
                                         f"MAKEFLAGS=-j{len(os.sched_getaffinity(0))}"]
    assert plan["sdist"] in (str(ROOT / ".device/horovod-0.28.1.tar.gz"), "missing: run make device-pack before the device call")
    assert not (site / "nvidia/nccl/lib/libnccl.so").exists() and not (tmp_path / "out").exists()  # dry: no changes


def test_dry_run_runs_every_cuda_test_a_resnet50_bench_and_the_image_pipeline_in_budget(tmp_path):
    site, cuda = gpu_machine(tmp_path)
    plan, bench = dry_run(PYTHONPATH=str(site), CUDA_HOME=str(cuda))
    expected = sorted(str(p.relative_to(ROOT)) for pattern in ("tests/backends/test_*cuda*.py", "tests/bench/test_*cuda*.py")
                      for p in ROOT.glob(pattern))
    assert sorted(plan["tests"].split()) == expected
    assert {"tests/backends/test_torch_cuda.py", "tests/backends/test_torch_cuda_engine.py"} <= set(expected)
    assert bench == ["resnet50 device=cuda precision=bf16 channels_last=yes per_worker_batch=128"]
    assert plan["images"] == "resnet50 device=cuda precision=bf16 channels_last=yes per_worker_batch=128 data_workers=14"
    assert plan["input_workers"] == "1 2 4 8 12 15"  # the worker-scaling curve of one rank on a 16-core host
    budget = dict(part.split(":") for part in plan["budget_s"].split())
    phases = ("build", "tests", "bench", "input", "images")
    assert sum(int(budget[phase]) for phase in phases) <= int(budget["total"]) <= 580
    _, three = dry_run(PYTHONPATH=str(site), CUDA_HOME=str(cuda), DEVICE_CHECK_BENCH_CONFIGS="fp32:no bf16:no bf16:yes")
    assert [b.split()[2:4] for b in three] == [["precision=fp32", "channels_last=no"],
                                               ["precision=bf16", "channels_last=no"],
                                               ["precision=bf16", "channels_last=yes"]]
    if not shutil.which("nvidia-smi"):
        assert "HOROVOD_BUILD_CUDA_CC_LIST=90" in plan["build_env"]  # the H200's sm_90 when nothing says otherwise


def test_dry_run_names_what_is_missing(tmp_path):
    plan, _ = dry_run(DEVICE_PACK=str(tmp_path / "empty"), DEVICE_CHECK_GPU_OPERATIONS="", CUDA_HOME=str(tmp_path))
    assert plan["sdist"] == "missing: run make device-pack before the device call"
    assert "HOROVOD_GPU_OPERATIONS" not in plan["build_env"] and "CUDA_CC_LIST" not in plan["build_env"]
