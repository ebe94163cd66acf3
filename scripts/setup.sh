#!/usr/bin/env bash
# One-command set-up of the Horovod stack for this project.
#
#   1. Debian packages (Open MPI, Fashion-MNIST, a C++ compiler) when missing.
#   2. .venv with the pinned versions in requirements/lock.txt, and this project (editable).
#   3. Horovod built from its PyPI sdist with two build fixes, cached as a wheel keyed by versions.
#   4. `horovodrun --check-build`, failing unless TensorFlow, PyTorch, MPI and Gloo are all built.
#
# Idempotent: on a set-up machine every step is a check that takes seconds.
# GPU users: HARNESS_LOCK=cuda selects requirements/lock-cuda.txt (CUDA builds of the same torch and
# TensorFlow versions, with their nvidia-* wheels pinned) and implies HOROVOD_GPU_OPERATIONS=NCCL unless
# that is set (set it empty for a GPU build without NCCL). Before anything is installed or built, set-up
# refuses in one line a venv whose torch is the CPU build (pip would keep it: PEP 440 ignores +cpu), a
# CPU torch that pip installed from the CUDA lock, and a missing nvcc or NCCL; NCCL comes from
# HOROVOD_NCCL_HOME/_INCLUDE/_LIB or else the nvidia-nccl-cu* wheel that CUDA torch installs
# (scripts/horovod_build.sh). HOROVOD_* and CUDA_HOME variables, given or derived, are part of the
# cache key. With HOROVOD_GPU_OPERATIONS=NCCL `horovodrun --check-build` must show [X] NCCL.
# SETUP_PRINT=1 prints the lock file, Debian packages, GPU operations, torch build, nvcc and NCCL that
# would be used, and changes nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
case "${HARNESS_LOCK:-cpu}" in
  cpu) LOCK=$ROOT/requirements/lock.txt ;;
  cuda) LOCK=$ROOT/requirements/lock-cuda.txt ;;
  *) printf '[setup] error: HARNESS_LOCK must be cpu or cuda, got %s\n' "$HARNESS_LOCK" >&2; exit 2 ;;
esac
if [ "${HARNESS_LOCK:-cpu}" = cuda ] && [ -z "${HOROVOD_GPU_OPERATIONS+set}" ]; then
  export HOROVOD_GPU_OPERATIONS=NCCL
fi
# The Horovod sdist is kept here (gitignored) for scripts/device_check.sh to carry to a GPU machine.
SDIST_DIR=$ROOT/.device
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/large-minibatch-harness
# openssh-server: sshd for the emulated cluster's hosts (harness cluster up).
# libjpeg-dev: libjpeg-turbo's headers, for the JPEG window decoder (harness/runtime/_jpegwindow.c).
DEBIAN_PACKAGES=(libopenmpi-dev openmpi-bin dataset-fashion-mnist g++ make openssh-server libjpeg-dev)

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/horovod_build.sh
source "$ROOT/scripts/horovod_build.sh"

install_debian_packages() {
  local missing=() pkg
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo -n true 2>/dev/null && sudo="sudo -n" ||
      die "missing Debian packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}"
  fi
  command -v apt-get >/dev/null ||
    die "missing packages: ${missing[*]} (no apt-get here; install Open MPI dev files and Fashion-MNIST by hand)"
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null ||
    die "apt-get could not install: ${missing[*]}; try: sudo apt-get install -y ${missing[*]}"
}

create_venv() {
  [ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
  local stamp="$VENV/.lock.sha256" want
  want=$(cat "$LOCK" "$ROOT/pyproject.toml" "$ROOT/setup.py" "$ROOT/harness/runtime/_jpegwindow.c" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  say "installing pinned packages from ${LOCK#"$ROOT"/} (first run: a few minutes)"
  "$VENV/bin/pip" install -q -r "$LOCK"
  "$VENV/bin/pip" install -q --no-deps -e "$ROOT"
  "$VENV/bin/python" -c 'import sys; from harness.runtime import jpeg; sys.exit(not jpeg.available())' ||
    say "warning: the JPEG window decoder was not built (libjpeg-turbo's headers missing: apt-get install libjpeg-dev, then rerun); JPEGs decode with Pillow, slower"
  echo "$want" > "$stamp"
  rm -f "$VENV/.horovod-checked"  # packages changed: check the build again
}

# Cache key: Horovod, torch, TensorFlow and Python versions, plus any HOROVOD_* build variables.
horovod_cache_key() {
  local versions build_env
  versions=$("$VENV/bin/python" - <<'EOF'
import sys, importlib.metadata as md
def version(*names):
    for name in names:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            pass
    return "none"
tf = version("tensorflow-cpu", "tensorflow")
print(f"torch{version('torch')}-tf{tf}-py{sys.version_info[0]}.{sys.version_info[1]}")
EOF
)
  build_env=$(env | grep -E '^(HOROVOD_|CUDA_HOME|NCCL_HOME)' | grep -vE '^HOROVOD_(WITH|WITHOUT)_' | sort | sha256sum | cut -c1-8)
  echo "horovod${HOROVOD_VERSION}-${versions//+/_}-env${build_env}"
}

build_horovod_wheel() {
  local out=$1 work
  work=$(mktemp -d)
  say "building Horovod $HOROVOD_VERSION from its sdist (about 5 minutes, once per cache key)"
  if [ ! -f "$SDIST_DIR/horovod-$HOROVOD_VERSION.tar.gz" ]; then
    "$VENV/bin/pip" download -q --no-deps --no-binary :all: "horovod==$HOROVOD_VERSION" -d "$SDIST_DIR" 2>/dev/null ||
      die "could not download the horovod==$HOROVOD_VERSION sdist from PyPI"
  fi
  tar -xzf "$SDIST_DIR/horovod-$HOROVOD_VERSION.tar.gz" -C "$work"
  patch_horovod_sources "$work/horovod-$HOROVOD_VERSION"
  (
    cd "$work/horovod-$HOROVOD_VERSION"
    export PATH="$VENV/bin:$PATH" HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 \
      HOROVOD_WITH_MPI=1 HOROVOD_WITHOUT_MXNET=1
    "$VENV/bin/pip" wheel -q --no-build-isolation --no-deps -w "$work/wheel" . >"$work/build.log" 2>&1
  ) || { tail -40 "$work/build.log" >&2; die "Horovod build failed (log tail above; full log: $work/build.log)"; }
  mkdir -p "$out"
  mv "$work"/wheel/horovod-*.whl "$out/"
  rm -rf "$work"
}

# The built extension libraries, found without importing TensorFlow (which takes seconds).
horovod_libs_present() {
  "$VENV/bin/python" -c '
import glob, importlib.util, os, sys
spec = importlib.util.find_spec("horovod")
root = os.path.dirname(spec.origin) if spec and spec.origin else ""
sys.exit(0 if root and all(glob.glob(os.path.join(root, d, "mpi_lib*.so")) for d in ("torch", "tensorflow")) else 1)
' 2>/dev/null
}

install_horovod() {
  local key dir stamp
  key=$(horovod_cache_key)
  stamp="$VENV/.horovod-key"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] && horovod_libs_present; then
    return 0
  fi
  dir="$CACHE/$key"
  if ls "$dir"/horovod-*.whl >/dev/null 2>&1; then
    say "using cached Horovod wheel: $dir"
  else
    build_horovod_wheel "$dir.partial"
    rm -rf "$dir" && mv "$dir.partial" "$dir"
  fi
  "$VENV/bin/pip" install -q --no-deps --force-reinstall "$dir"/horovod-*.whl
  echo "$key" > "$stamp"
  rm -f "$VENV/.horovod-checked"
}

# Runs whenever something was installed (or with FORCE_CHECK=1); the result is stamped per key.
check_horovod_build() {
  local out missing=() fw stamp="$VENV/.horovod-checked" key
  key=$(cat "$VENV/.horovod-key")
  if [ "${FORCE_CHECK:-0}" != 1 ] && [ "$(cat "$stamp" 2>/dev/null)" = "$key" ]; then
    say "up to date (horovodrun --check-build passed for $key; make check-build reruns it)"
    return 0
  fi
  out=$(TF_CPP_MIN_LOG_LEVEL=3 "$VENV/bin/horovodrun" --check-build 2>&1) || die "horovodrun --check-build failed: $out"
  local wanted=(TensorFlow PyTorch MPI Gloo)
  if [ "${HOROVOD_GPU_OPERATIONS:-}" = NCCL ]; then wanted+=(NCCL); fi
  for fw in "${wanted[@]}"; do
    grep -qE "\[X\] $fw\b" <<<"$out" || missing+=("$fw")
  done
  if [ ${#missing[@]} -ne 0 ]; then
    echo "$out" >&2
    case " ${missing[*]} " in
      *" NCCL "*) die "Horovod was built without NCCL: set HOROVOD_GPU_OPERATIONS=NCCL and HOROVOD_NCCL_HOME (see README)" ;;
      *) die "Horovod was built without: ${missing[*]}" ;;
    esac
  fi
  echo "$key" > "$stamp"
  say "Horovod $HOROVOD_VERSION ready: ${wanted[*]}"
}

# Before anything is installed: the venv's torch must be the build the lock asks for, and a NCCL build
# needs nvcc. pip cannot tell torch builds apart (PEP 440 ignores the +cpu label), so this reads the file.
check_torch_before_install() {
  local site build
  site=$(venv_site_packages "$VENV")
  build=$([ -z "$site" ] || torch_build "$site")
  if [ "${HARNESS_LOCK:-cpu}" = cuda ] && [ "$build" = cpu ]; then
    die "$VENV has the CPU build of torch, which pip would keep for lock-cuda.txt (PEP 440 ignores +cpu): use a fresh venv (VENV=.venv-cuda HARNESS_LOCK=cuda make setup) or first run $VENV/bin/pip uninstall -y torch"
  fi
  if [ "${HARNESS_LOCK:-cpu}" = cpu ] && [ -n "$build" ] && [ "$build" != cpu ]; then
    say "warning: $VENV has a CUDA $build build of torch; the CPU lock keeps it (same version), and Horovod is built without NCCL unless HOROVOD_GPU_OPERATIONS=NCCL (or use HARNESS_LOCK=cuda)"
  fi
  if [ "${HOROVOD_GPU_OPERATIONS:-}" = NCCL ]; then require_nvcc; fi
}

# After installing: the CUDA lock must have brought the CUDA torch (a find-links or index in the pip
# config can serve torch==2.13.0+cpu, which satisfies ==2.13.0), and a NCCL build its nvcc and NCCL.
check_torch_after_install() {
  local site build
  site=$(venv_site_packages "$VENV")
  build=$(torch_build "$site")
  if [ "${HARNESS_LOCK:-cpu}" = cuda ] && [ "$build" = cpu ]; then
    die "pip installed the CPU build of torch from lock-cuda.txt (a find-links or index in your pip config serves torch 2.13.0+cpu; see pip config list): remove it there, run $VENV/bin/pip uninstall -y torch, and rerun"
  fi
  if [ "${HOROVOD_GPU_OPERATIONS:-}" = NCCL ]; then
    prepare_nccl_build "$site" "$build"
    say "NCCL build: nvcc $NVCC (CUDA $NVCC_RELEASE), NCCL from the $NCCL_SOURCE: $NCCL_INCLUDE_DIR, $NCCL_LIB_DIR"
  fi
}

# What set-up would use, without changing anything (SETUP_PRINT=1).
print_plan() {
  local site build nvcc found inc lib source
  echo "lock=$LOCK"
  echo "debian=${DEBIAN_PACKAGES[*]}"
  echo "gpu_operations=${HOROVOD_GPU_OPERATIONS:-none}"
  site=$(venv_site_packages "$VENV")
  build=$([ -z "$site" ] || torch_build "$site")
  echo "torch=${build:-none}"
  [ "${HOROVOD_GPU_OPERATIONS:-}" = NCCL ] || return 0
  if nvcc=$(find_nvcc); then echo "nvcc=$nvcc (CUDA $(nvcc_release "$nvcc"))"; else echo "nvcc=not found"; fi
  if found=$(locate_nccl "$site" "${nvcc:+$(cd "$(dirname "$nvcc")/.." && pwd)}"); then
    read -r inc lib source <<<"$found"
    echo "nccl_include=$inc"
    echo "nccl_lib=$lib"
    echo "nccl_from=$source"
  else
    echo "nccl=not found: $found"
  fi
}

if [ "${SETUP_PRINT:-0}" = 1 ]; then
  print_plan
  exit 0
fi
check_torch_before_install
install_debian_packages
create_venv
check_torch_after_install
install_horovod
check_horovod_build
