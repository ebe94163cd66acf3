#!/usr/bin/env bash
# The GPU paths on a lent GPU machine (PyTorch with CUDA, nvcc and cmake; no Horovod, TensorFlow, MPI or
# network), in one command and at most 10 minutes:
#   1. build: Horovod 0.28.1 for PyTorch with Gloo and NCCL (no TensorFlow, MPI or MXNet) from the sdist
#      carried in .device/, with set-up's source patches (scripts/horovod_build.sh), NCCL from the
#      machine's nvidia-nccl wheel or HOROVOD_NCCL_HOME, CUDA kernels for this GPU's compute capability
#      only (HOROVOD_BUILD_CUDA_CC_LIST), all cores (MAKEFLAGS); installed with pip --target into
#      .device-work/site, used through PYTHONPATH over the machine's own torch; then one process without
#      a launcher (Gloo's single-process context) must init, see NCCL built, and allreduce on the GPU;
#   2. tests: tests/backends/test_*cuda*.py and tests/bench/test_*cuda*.py -> $OUT/pytest.txt, pytest.xml;
#   3. bench: harness vs plain torch images/s, ResNet-50 on synthetic data, k = 1, bf16 + channels-last
#      -> $OUT/throughput.csv (one row per configuration; DEVICE_CHECK_BENCH_CONFIGS="fp32:no bf16:no
#      bf16:yes" runs the three of results/device-check/throughput.csv);
#   4. input: `harness data photos` (ImageNet-sized JPEGs from the photograph carried in .device/), then
#      `harness bench input` on them with DEVICE_CHECK_INPUT_WORKERS decode workers (default "1 2 4 8 12
#      15": the worker-scaling curve of one rank on this host) for the window decoder, Pillow's full
#      decode and Pillow's decode alone -> $OUT/input/input.csv; the window decoder comes prebuilt in
#      .device/jpeg/ (with its libjpeg) where the machine cannot build it;
#   5. images: `harness train` of ResNet-50 from that folder on the GPU (bf16, channels-last, uint8
#      batches from pinned memory on the copy stream) with DEVICE_CHECK_IMAGE_WORKERS decode workers
#      (default "14") -> $OUT/images.csv: data-wait share, pipeline and compute images/s, end to end;
#   and $OUT/env.txt: nvidia-smi, Python, torch, CUDA, cuDNN and NCCL versions, the build's log tail.
# Each phase has a timeout within one overall budget (printed first); a phase that fails or times out is
# reported and the next one runs. Exit status 1 if any phase failed.
#
#   make device-pack                  # here, once: the sdist and a small wheelhouse into .device/
#   bash scripts/device_check.sh      # there, with .device carried (the device tool's carry: [".device"])
#
# A rerun on the same machine reuses the build in .device-work/ when nothing it depends on changed.
# DEVICE_CHECK_DRY=1 prints the plan (Python, torch build, nvcc, NCCL, build variables, tests, bench
# configurations, budgets) as key=value lines and runs nothing. Knobs: OUT, PYTHON, DEVICE_CHECK_TOTAL_S
# (570), DEVICE_CHECK_BUILD_S (240), DEVICE_CHECK_TESTS_S (150), DEVICE_CHECK_BENCH_S (50 per
# configuration), DEVICE_CHECK_INPUT_S (75, with 30 to generate the photos), DEVICE_CHECK_IMAGES_S (45 per worker count),
# DEVICE_CHECK_IMAGE_SIZE (224), DEVICE_CHECK_BATCH (128), DEVICE_CHECK_CC (compute capability, e.g. 90); and, to try
# the whole flow on a machine without a GPU: DEVICE_CHECK_GPU_OPERATIONS= (empty: build without NCCL
# and check on CPU tensors), DEVICE_CHECK_DEVICE=cpu, DEVICE_CHECK_MODEL=resnet-small, DEVICE_PACK,
# DEVICE_WORK (where the pack is read and the build kept).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PACK=${DEVICE_PACK:-$ROOT/.device}
WORK=${DEVICE_WORK:-$ROOT/.device-work}
OUT=${OUT:-$ROOT/runs/device-check}
TOTAL_S=${DEVICE_CHECK_TOTAL_S:-570}
BUILD_S=${DEVICE_CHECK_BUILD_S:-240}
TESTS_S=${DEVICE_CHECK_TESTS_S:-150}
BENCH_S=${DEVICE_CHECK_BENCH_S:-50}
IMAGES_S=${DEVICE_CHECK_IMAGES_S:-45}
IMAGE_SIZE=${DEVICE_CHECK_IMAGE_SIZE:-224}
read -r -a IMAGE_WORKERS <<<"${DEVICE_CHECK_IMAGE_WORKERS:-14}"
INPUT_S=${DEVICE_CHECK_INPUT_S:-75}
INPUT_WORKERS=${DEVICE_CHECK_INPUT_WORKERS:-1 2 4 8 12 15}
BATCH=${DEVICE_CHECK_BATCH:-128}
GPU_OPS=${DEVICE_CHECK_GPU_OPERATIONS-NCCL}
DEVICE=${DEVICE_CHECK_DEVICE:-cuda}
MODEL=${DEVICE_CHECK_MODEL:-resnet50}
# Module:wheel: what Horovod's torch import (cloudpickle, packaging, psutil via horovod.runner), pytest,
# the harness CLI and a build without isolation (setuptools, wheel) need beyond torch and numpy. Only
# those the machine lacks are installed.
WHEELHOUSE_MODULES=(pytest:pytest pluggy:pluggy iniconfig:iniconfig pygments:Pygments packaging:packaging
  cloudpickle:cloudpickle psutil:psutil tabulate:tabulate tqdm:tqdm setuptools:setuptools wheel:wheel
  yaml:PyYAML cffi:cffi pycparser:pycparser PIL:pillow)
# Horovod's setup.py asks setuptools for these at build time (setup_requires); without a network they
# must be installed first. Compiled ones come for each CPython the device may have.
BINARY_WHEELS=(PyYAML cffi pillow)
BINARY_PYTHONS=(3.10 3.11 3.12 3.13)
BUILD_FLAGS=(HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITH_GLOO=1
  HOROVOD_WITHOUT_MXNET=1 ${GPU_OPS:+HOROVOD_GPU_OPERATIONS=$GPU_OPS})
BENCH_CONFIGS=()
for config in ${DEVICE_CHECK_BENCH_CONFIGS-bf16:yes}; do BENCH_CONFIGS+=("${config/:/ }"); done
PHOTO=grace_hopper.jpg  # the photograph matplotlib ships, carried in .device/ for `harness data photos`

say() { printf '[device-check] %s\n' "$*"; }
die() { printf '[device-check] error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/horovod_build.sh
source "$ROOT/scripts/horovod_build.sh"

# ---- pack (here, with the network): the sdist and the wheelhouse, versions from requirements/lock.txt
pack() {
  local pip=${PIP:-$ROOT/.venv/bin/pip} wheels=() entry name version
  [ -x "$pip" ] || pip="python3 -m pip"
  mkdir -p "$PACK/wheels"
  if [ ! -f "$PACK/horovod-$HOROVOD_VERSION.tar.gz" ]; then
    $pip download -q --no-deps --no-binary :all: "horovod==$HOROVOD_VERSION" -d "$PACK" ||
      die "could not download the horovod==$HOROVOD_VERSION sdist"
  fi
  for entry in "${WHEELHOUSE_MODULES[@]}"; do
    name=${entry#*:}
    version=$(grep -i -m1 "^$name==" "$ROOT/requirements/lock.txt" | cut -d= -f3)
    wheels+=("$name${version:+==$version}")
  done
  local photo
  photo=$("$ROOT/.venv/bin/python" -c 'import matplotlib, os; print(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))') &&
    cp "$photo" "$PACK/$PHOTO" || die "could not copy matplotlib's $PHOTO into $PACK"
  # Pure-Python wheels, and psutil's abi3 wheel (any CPython >= 3.6 on manylinux x86-64).
  $pip download -q --no-deps --only-binary :all: -d "$PACK/wheels" "${wheels[@]}" || die "could not download: ${wheels[*]}"
  local python binary=()
  for name in "${BINARY_WHEELS[@]}"; do
    version=$(grep -i -m1 "^$name==" "$ROOT/requirements/lock.txt" | cut -d= -f3)
    binary+=("$name${version:+==$version}")
  done
  for python in "${BINARY_PYTHONS[@]}"; do
    for entry in "${binary[@]}"; do
      # The locked version, else the newest for that CPython (Pillow 13 has no wheel for 3.10).
      $pip download -q --no-deps --only-binary :all: --implementation cp --python-version "$python" \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
        -d "$PACK/wheels" "$entry" 2>/dev/null ||
      $pip download -q --no-deps --only-binary :all: --implementation cp --python-version "$python" \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
        -d "$PACK/wheels" "${entry%%==*}" || die "could not download ${entry%%==*} for CPython $python"
    done
  done
  # The JPEG window decoder, for a machine without libjpeg's headers: the CPython limited-API module
  # (any CPython >= 3.10) linked against this machine's libjpeg-turbo, which is carried beside it.
  local include libjpeg
  include=$("$ROOT/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("include"))')
  libjpeg=$(ldconfig -p | awk '/libjpeg.so.62 .*x86-64/ {print $NF; exit}')
  mkdir -p "$PACK/jpeg"
  [ -n "$libjpeg" ] && cp -L "$libjpeg" "$PACK/jpeg/libjpeg.so.62" &&
    gcc -O3 -fwrapv -fPIC -shared -I"$include" "$ROOT/harness/runtime/_jpegwindow.c" -Wl,-rpath,'$ORIGIN' \
      -L"$PACK/jpeg" -l:libjpeg.so.62 -o "$PACK/jpeg/_jpegwindow.abi3.so" ||
    die "could not build the JPEG window decoder for the pack (gcc and libjpeg-dev needed here)"
  say "packed $(du -sh "$PACK" | cut -f1) in $PACK (carry .device; the device tool carries at most 64 MiB):"
  find "$PACK" -type f | sort | sed "s|^$PACK/|  |"
}

# ---- the plan, decided the same way in the dry run and the real one
choose_python() {
  local candidate
  for candidate in ${PYTHON:-} python3 python; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    "$candidate" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)' 2>/dev/null || continue
    candidate=$(command -v "$candidate")
    echo "$(cd "$(dirname "$candidate")" && pwd)/$(basename "$candidate")"  # absolute, not resolved: a venv's python stays
    return 0
  done
  return 1
}

# site-packages that holds torch (and the nvidia-nccl wheel beside it), found without importing torch.
torch_site() {
  "$PY" -c 'import importlib.util, os; print(os.path.dirname(os.path.dirname(importlib.util.find_spec("torch").origin)))'
}

missing_modules() {
  local entry missing=()
  for entry in "${WHEELHOUSE_MODULES[@]}"; do
    PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH} "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('${entry%%:*}') is None)" \
      2>/dev/null || missing+=("${entry#*:}")
  done
  echo "${missing[*]}"
}

compute_capability() {
  local cc=${DEVICE_CHECK_CC:-}
  [ -n "$cc" ] || cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
  echo "${cc:-90}"
}

cuda_tests() {
  local file found=()
  for file in "$ROOT"/tests/backends/test_*cuda*.py "$ROOT"/tests/bench/test_*cuda*.py; do
    [ -f "$file" ] && found+=("${file#"$ROOT"/}")
  done
  echo "${found[*]}"
}

plan() {
  local site build nvcc found inc lib source config
  echo "python=${PY:-not found (no python with torch)}"
  site=$([ -z "${PY:-}" ] || torch_site)
  build=$([ -z "$site" ] || torch_build "$site")
  echo "torch_site=${site:-none}"
  echo "torch=${build:-none}"
  if [ -f "$PACK/horovod-$HOROVOD_VERSION.tar.gz" ]; then echo "sdist=$PACK/horovod-$HOROVOD_VERSION.tar.gz"
  else echo "sdist=missing: run make device-pack before the device call"; fi
  echo "wheelhouse_installs=$([ -z "${PY:-}" ] || missing_modules)"
  if nvcc=$(find_nvcc); then echo "nvcc=$nvcc (CUDA $(nvcc_release "$nvcc"))"; else echo "nvcc=not found"; fi
  if found=$(locate_nccl "$site" "${nvcc:+$(cd "$(dirname "$nvcc")/.." && pwd)}"); then
    read -r inc lib source <<<"$found"
    echo "nccl_include=$inc"; echo "nccl_lib=$lib"; echo "nccl_from=$source"
  else
    echo "nccl=not found: $found"
  fi
  echo "build_env=${BUILD_FLAGS[*]}${GPU_OPS:+ HOROVOD_BUILD_CUDA_CC_LIST=$(compute_capability)} MAKEFLAGS=-j$(nproc)"
  echo "tests=$(cuda_tests)"
  for config in "${BENCH_CONFIGS[@]}"; do
    read -r precision cl <<<"$config"
    echo "bench=$MODEL device=$DEVICE precision=$precision channels_last=$cl per_worker_batch=$BATCH"
  done
  echo "images=$MODEL device=$DEVICE precision=bf16 channels_last=yes per_worker_batch=$BATCH data_workers=${IMAGE_WORKERS[*]}"
  echo "input_workers=$INPUT_WORKERS"
  echo "budget_s=build:$BUILD_S tests:$TESTS_S bench:$((BENCH_S * ${#BENCH_CONFIGS[@]})) input:$INPUT_S images:$((IMAGES_S * ${#IMAGE_WORKERS[@]})) total:$TOTAL_S"
  echo "out=$OUT"
}

# ---- phases
# Seconds left for a phase: its own budget, capped by what is left of the total.
phase_limit() {
  local left=$((TOTAL_S - SECONDS))
  [ "$left" -lt "$1" ] && echo "$left" || echo "$1"
}

STATUS=()
record() {  # phase, rc, seconds
  local verdict=ok
  [ "$2" -eq 0 ] || verdict="FAILED (exit $2$([ "$2" -eq 124 ] && echo ', timed out'))"
  STATUS+=("$1: $verdict in $3 s")
  say "phase $1: $verdict in $3 s (total ${SECONDS} s of $TOTAL_S)"
}

run_phase() {  # name, budget, function
  local name=$1 limit start rc
  limit=$(phase_limit "$2")
  if [ "$limit" -le 5 ]; then record "$name" 124 0; return; fi
  say "phase $name (at most $limit s)"
  start=$SECONDS
  # The phase runs in its own bash process so that `timeout` can stop it, and die ends only the phase.
  timeout --kill-after=10 "$limit" bash -c "source '$ROOT/scripts/device_check.sh' && $3" </dev/null
  rc=$?
  record "$name" "$rc" $((SECONDS - start))
}

inpy() { PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH} "$PY" "$@"; }

build_key() {
  { sha256sum "$PACK/horovod-$HOROVOD_VERSION.tar.gz" "$ROOT/scripts/horovod_build.sh"; echo "${BUILD_FLAGS[*]}";
    compute_capability; "$PY" --version; } 2>&1 | sha256sum | cut -c1-16
}

phase_build() {
  local site build key missing cc jobs
  [ -f "$PACK/horovod-$HOROVOD_VERSION.tar.gz" ] ||
    die "no $PACK/horovod-$HOROVOD_VERSION.tar.gz: run make device-pack here and carry .device"
  key=$(build_key)
  if [ "$(cat "$WORK/build.key" 2>/dev/null)" = "$key" ] &&
      inpy -c 'import horovod.torch as hvd, sys; sys.exit(not hvd.gloo_built())' 2>/dev/null; then
    say "reusing the Horovod build in $WORK/site (key $key)"
    cp "$WORK/build.log" "$OUT/build.log" 2>/dev/null
    return 0
  fi
  rm -rf "$WORK/site" "$WORK/src" "$WORK/build.key" && mkdir -p "$WORK/site" "$WORK/src"
  missing=$(missing_modules)
  if [ -n "$missing" ]; then
    say "installing from the wheelhouse: $missing"
    # shellcheck disable=SC2086
    "$PY" -m pip install -q --no-index --no-deps --find-links "$PACK/wheels" --target "$WORK/site" $missing ||
      die "could not install $missing from $PACK/wheels"
  fi
  site=$(torch_site)
  build=$(torch_build "$site")
  if [ "$GPU_OPS" = NCCL ]; then
    prepare_nccl_build "$site" "$build"
    say "torch $build at $site; nvcc $NVCC (CUDA $NVCC_RELEASE); NCCL from the $NCCL_SOURCE: $NCCL_LIB_DIR"
  fi
  tar -xzf "$PACK/horovod-$HOROVOD_VERSION.tar.gz" -C "$WORK/src"
  patch_horovod_sources "$WORK/src/horovod-$HOROVOD_VERSION"
  cc=$(compute_capability) jobs=-j$(nproc)
  say "building with ${BUILD_FLAGS[*]}${GPU_OPS:+ HOROVOD_BUILD_CUDA_CC_LIST=$cc} MAKEFLAGS=$jobs"
  (
    # setuptools fetches setup_requires with pip: from the wheelhouse only, never from a network.
    # cmake >= 4 refuses Gloo's cmake_minimum_required(2.8) unless told the oldest policy to assume.
    export "${BUILD_FLAGS[@]}" MAKEFLAGS="$jobs" PIP_NO_INDEX=1 PIP_FIND_LINKS="$PACK/wheels" \
      CMAKE_POLICY_VERSION_MINIMUM=3.5 CXXFLAGS="-include cstdint ${CXXFLAGS:-}"  # Gloo's headers under GCC 13
    if [ -n "$GPU_OPS" ]; then export HOROVOD_BUILD_CUDA_CC_LIST="$cc"; fi
    inpy -m pip install -v --no-build-isolation --no-deps --no-index --target "$WORK/site" \
      "$WORK/src/horovod-$HOROVOD_VERSION"
  ) >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log" >&2; die "Horovod build failed (log: $OUT/build.log)"; }
  cp "$OUT/build.log" "$WORK/build.log"
  rm -rf "$WORK/src"
  # One process, no launcher, no HOROVOD_* variables: Gloo's single-process context; NCCL on the GPU.
  env -u HOROVOD_GLOO_RENDEZVOUS_ADDR -u HOROVOD_RANK -u HOROVOD_SIZE "PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}" \
    "$PY" - "$DEVICE" "$GPU_OPS" <<'EOF' || die "the built horovod.torch does not init and allreduce in one process"
import sys

import horovod.torch as hvd
import torch

device, gpu_ops = sys.argv[1], sys.argv[2]
hvd.init()
built = {"gloo": hvd.gloo_built(), "nccl": hvd.nccl_built(), "mpi": hvd.mpi_built()}
assert hvd.size() == 1 and built["gloo"] and not built["mpi"] and bool(built["nccl"]) == (gpu_ops == "NCCL"), built
y = hvd.allreduce(torch.arange(4.0, device=device), op=hvd.Sum, name="device_check")
assert torch.equal(y.cpu(), torch.arange(4.0)), y
print(f"[device-check] {hvd.__file__}: size 1 without a launcher, built {built}, allreduce on {y.device} ok")
EOF
  echo "$key" >"$WORK/build.key"
}

phase_tests() {
  local tests
  tests=$(cuda_tests)
  [ -n "$tests" ] || die "no CUDA tests found (tests/backends/test_*cuda*.py)"
  # shellcheck disable=SC2086
  (cd "$ROOT" && inpy -m pytest $tests -q -rs -p no:cacheprovider --junitxml="$OUT/pytest.xml") >"$OUT/pytest.txt" 2>&1
  local rc=$?
  tail -15 "$OUT/pytest.txt"
  return $rc
}

phase_bench() {
  local config precision cl name flags rc=0 limit
  echo "model,precision,channels_last,per_worker_batch,harness_images_per_s,plain_images_per_s,ratio" >"$OUT/throughput.csv"
  for config in "${BENCH_CONFIGS[@]}"; do
    read -r precision cl <<<"$config"
    name=$MODEL-$precision$([ "$cl" = yes ] && echo -cl)
    flags=()
    [ "$cl" = yes ] && flags+=(--channels-last)
    limit=$((BENCH_S))
    say "bench $name (at most $limit s)"
    (cd "$ROOT" && timeout --kill-after=5 "$limit" env PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m harness_cli \
      bench throughput --backend torch --model "$MODEL" --device "$DEVICE" --precision "$precision" "${flags[@]}" \
      --per-worker-batch "$BATCH" --warmup-steps 5 --steps 30 --batches-per-iter 10 --peers plain \
      --out "$WORK/bench/$name" --overwrite) >"$OUT/bench-$name.txt" 2>&1 || {
      rc=1; tail -5 "$OUT/bench-$name.txt"; echo "$MODEL,$precision,$cl,$BATCH,failed,failed," >>"$OUT/throughput.csv"; continue; }
    "$PY" - "$WORK/bench/$name/summary.json" "$MODEL" "$precision" "$cl" >>"$OUT/throughput.csv" <<'EOF' || rc=1
import json, sys
s = json.load(open(sys.argv[1]))
plain = s["peers"]["plain"]["images_per_second_per_worker"]
print(f"{sys.argv[2]},{sys.argv[3]},{sys.argv[4]},{s['per_worker_batch']},{s['images_per_second_per_worker']:.1f},"
      f"{plain:.1f},{s['ratio_to_plain']:.3f}")
EOF
    tail -2 "$OUT/bench-$name.txt"
  done
  cat "$OUT/throughput.csv"
  return $rc
}

make_photos() {
  local photos=$WORK/photos
  if [ ! -d "$photos/train" ]; then
    rm -rf "$photos"
    (cd "$ROOT" && inpy -m harness_cli data photos "$photos" --classes 10 --images-per-class 256 --val-per-class 20 \
      --photo "$PACK/$PHOTO") || die "could not generate the photo folder"
  fi
}

phase_input() {
  make_photos
  if ! (cd "$ROOT" && inpy -c 'import sys; from harness.runtime import jpeg; sys.exit(not jpeg.available())'); then
    say "the window decoder is not built here: using the one in $PACK/jpeg/"
    cp "$PACK/jpeg/_jpegwindow.abi3.so" "$PACK/jpeg/libjpeg.so.62" "$ROOT/harness/runtime/" ||
      die "no prebuilt window decoder in $PACK/jpeg (make device-pack)"
  fi
  local counts
  counts=$(echo "$INPUT_WORKERS" | tr ' ' ',')
  (cd "$ROOT" && inpy -m harness_cli bench input --dataset "$WORK/photos" --pipelines harness,harness-pillow,decode \
    --data-workers "$counts" --images 1024 --out "$OUT/input" --overwrite) >"$OUT/input.txt" 2>&1
  local rc=$?
  tail -25 "$OUT/input.txt"
  return $rc
}

phase_images() {
  local photos=$WORK/photos workers name rc=0
  echo "model,precision,channels_last,per_worker_batch,data_workers,steps,images_per_s_compute,images_per_s_end_to_end,data_wait_share,pipeline_images_per_s_per_rank,compute_images_per_s_per_rank,input_bound" >"$OUT/images.csv"
  make_photos
  for workers in "${IMAGE_WORKERS[@]}"; do
    name=images-w$workers
    say "train $MODEL from $photos with $workers decode workers (at most $IMAGES_S s)"
    (cd "$ROOT" && timeout --kill-after=5 "$IMAGES_S" env PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m harness_cli \
      train --backend torch --model "$MODEL" --preset goyal2017-resnet50 --device "$DEVICE" --precision bf16 \
      --channels-last --dataset "$photos" --image-size "$IMAGE_SIZE" --per-worker-batch "$BATCH" \
      --data-workers "$workers" --max-steps 50 \
      --out "$WORK/train/$name" --overwrite) >"$OUT/$name.txt" 2>&1 || {
      rc=1; tail -5 "$OUT/$name.txt"; continue; }
    "$PY" - "$WORK/train/$name" "$MODEL" "$BATCH" "$workers" >>"$OUT/images.csv" <<'EOF' || rc=1
import json, sys
run = sys.argv[1]
s = json.load(open(f"{run}/summary.json"))
steps = [r for r in map(json.loads, open(f"{run}/records.jsonl")) if r["kind"] == "step"][s["timing_skip"]:]
end_to_end = sum(r["images"] for r in steps) / sum(r["step_time_s"] + r["data_wait_s"] for r in steps)
i = s["input"]
print(f"{sys.argv[2]},bf16,yes,{sys.argv[3]},{sys.argv[4]},{s['steps']},{s['images_per_second']:.1f},{end_to_end:.1f},"
      f"{i['data_wait_share']:.4f},{i['pipeline_images_per_s_per_rank']:.1f},{i['compute_images_per_s_per_rank']:.1f},"
      f"{i['input_bound']}")
EOF
    tail -1 "$OUT/$name.txt"
  done
  cat "$OUT/images.csv"
  return $rc
}

write_env() {
  local nvcc
  {
    echo "# device check $(date -u +%FT%TZ) on $(hostname), $(nproc) cores"
    nvidia-smi 2>&1
    "$PY" --version 2>&1
    inpy - <<'EOF' 2>&1
import torch
print(f"torch {torch.__version__}, torch.version.cuda {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
print(f"NCCL (torch) {'.'.join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else 'n/a'}")
for i in range(torch.cuda.device_count()):
    print(f"cuda:{i} {torch.cuda.get_device_name(i)}, capability {torch.cuda.get_device_capability(i)}")
EOF
    if nvcc=$(find_nvcc); then "$nvcc" --version 2>&1 | tail -2; fi
    cmake --version 2>&1 | head -1
  } >"$OUT/env.txt"
}

append_build_env() {
  {
    echo "# horovod"
    inpy -c 'import horovod, horovod.torch as hvd; print("horovod", horovod.__version__, "gloo", hvd.gloo_built(), "nccl", hvd.nccl_built(), "mpi", hvd.mpi_built())' 2>&1
    echo "# build log tail"
    tail -40 "$OUT/build.log" 2>/dev/null
    echo "# phases"
    printf '%s\n' "${STATUS[@]}"
  } >>"$OUT/env.txt"
}

main() {
  [ "${1:-}" = --pack ] && { pack; return; }
  PY=$(choose_python) || PY=""
  export PY
  if [ "${DEVICE_CHECK_DRY:-0}" = 1 ]; then plan; return 0; fi
  [ -n "$PY" ] || die "no python with torch found (set PYTHON)"
  mkdir -p "$OUT" "$WORK"
  say "budget: build <= $BUILD_S s, tests <= $TESTS_S s, bench <= ${#BENCH_CONFIGS[@]} x $BENCH_S s, input <= $INPUT_S s, images <= ${#IMAGE_WORKERS[@]} x $IMAGES_S s, all <= $TOTAL_S s; results in $OUT"
  plan | sed 's/^/  /'
  write_env
  run_phase build "$BUILD_S" phase_build
  run_phase tests "$TESTS_S" phase_tests
  [ "${#BENCH_CONFIGS[@]}" -eq 0 ] || run_phase bench $((BENCH_S * ${#BENCH_CONFIGS[@]})) phase_bench
  run_phase input "$INPUT_S" phase_input
  run_phase images $((IMAGES_S * ${#IMAGE_WORKERS[@]})) phase_images
  append_build_env
  say "done in $SECONDS s:"
  printf '  %s\n' "${STATUS[@]}"
  case "${STATUS[*]}" in *FAILED*) return 1 ;; esac
}

# Sourced by run_phase's child bash for one phase function; run, it is the whole check.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
