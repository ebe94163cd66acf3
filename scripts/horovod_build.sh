# Sourced by scripts/setup.sh and scripts/device_check.sh (not run on its own): the Horovod 0.28.1
# source patches and the GPU build checks, each answered without importing torch. The caller defines
# say and die (die prints one `[setup] error: ...` line or the caller's own and exits non-zero).
# shellcheck shell=bash disable=SC2034

HOROVOD_VERSION=0.28.1

# The two fixes Horovod 0.28.1 needs against torch >= 2.1 and TF 2.21, applied to the unpacked sdist.
patch_horovod_sources() {
  local src=$1
  sed -i 's/set(CMAKE_CXX_STANDARD 14)/set(CMAKE_CXX_STANDARD 17)/' \
    "$src/CMakeLists.txt" "$src/horovod/torch/CMakeLists.txt"
  grep -q 'set(CMAKE_CXX_STANDARD 17)' "$src/horovod/torch/CMakeLists.txt" ||
    die "C++17 fix did not apply to horovod/torch/CMakeLists.txt"
  ! grep -q 'CMAKE_CXX_STANDARD 14' "$src/CMakeLists.txt" || die "C++17 fix did not apply to CMakeLists.txt"
  # xla_mpi_ops.cc needs XLA headers that include highwayhash, which TensorFlow wheels do not ship.
  sed -i '/xla_mpi_ops\.cc/d' "$src/horovod/tensorflow/CMakeLists.txt"
  # GCC >= 13 no longer brings <string> and <stdexcept> in through other headers (seen on the device: GCC 13.3).
  grep -q '#include <string>' "$src/horovod/common/group_table.h" ||
    sed -i 's/#include <mutex>/#include <mutex>\n#include <string>/' "$src/horovod/common/group_table.h"
  grep -q '#include <stdexcept>' "$src/horovod/common/common.h" ||
    sed -i 's/#include <functional>/#include <functional>\n#include <stdexcept>/' "$src/horovod/common/common.h"
  grep -q '#include <string>' "$src/horovod/common/group_table.h" && grep -q '#include <stdexcept>' \
    "$src/horovod/common/common.h" || die "the GCC 13 include fix did not apply"
}

# The site-packages directory of a venv (the first lib/python3*/site-packages), or nothing.
venv_site_packages() {
  local dir
  for dir in "$1"/lib/python3*/site-packages; do
    [ -d "$dir" ] && { echo "$dir"; return 0; }
  done
  return 0
}

# The CUDA version a site-packages' torch was built for, read from torch/version.py (`cuda = None` in a
# CPU build) or, without that file, from the dist's local label (+cpu): "cpu", e.g. "13.0", or nothing
# when torch is not installed there. PEP 440 ignores the label, so pip alone cannot tell the builds apart.
torch_build() {
  local site=$1 value dist
  if [ -f "$site/torch/version.py" ]; then
    value=$(sed -n -E "s/^cuda([[:space:]]*:[^=]*)?[[:space:]]*=[[:space:]]*//p" "$site/torch/version.py" | head -1)
    value=${value//[\'\"]/}
    case "$value" in None | '') echo cpu ;; *) echo "$value" ;; esac
    return 0
  fi
  for dist in "$site"/torch-*.dist-info; do
    [ -d "$dist" ] || continue
    case "$dist" in *+cpu.dist-info) echo cpu ;; *) echo unknown ;; esac
    return 0
  done
  return 0
}

# nvcc as Horovod's build finds it ($HOROVOD_CUDA_HOME/bin, $CUDA_HOME/bin, PATH, /usr/local/cuda/bin),
# resolved to the toolkit's own bin/nvcc: a wrapper script on PATH (exec /usr/local/cuda-13.0/bin/nvcc)
# would otherwise make its own directory the CUDA home. nvcc --dryrun names its directory as _HERE_.
find_nvcc() {
  local candidate here
  for candidate in ${HOROVOD_CUDA_HOME:+"$HOROVOD_CUDA_HOME/bin/nvcc"} ${CUDA_HOME:+"$CUDA_HOME/bin/nvcc"} \
      "$(command -v nvcc 2>/dev/null)" /usr/local/cuda/bin/nvcc; do
    if [ -z "$candidate" ] || [ ! -x "$candidate" ]; then continue; fi
    here=$("$candidate" --dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ _HERE_=//p' | head -1)
    if [ -n "$here" ] && [ -x "$here/nvcc" ]; then echo "$here/nvcc"; else echo "$candidate"; fi
    return 0
  done
  return 1
}

# The CUDA release of an nvcc ("13.0"), from `nvcc --version`.
nvcc_release() {
  "$1" --version 2>/dev/null | sed -n -E 's/.*release ([0-9]+\.[0-9]+).*/\1/p' | head -1
}

# Where the NCCL build will look, as "INCLUDE_DIR LIB_DIR SOURCE"; SOURCE is user (HOROVOD_NCCL_* set),
# wheel (nvidia-nccl-cu* in site-packages, which ships libnccl.so.2 only) or system. Returns 1 when
# nccl.h or the library is missing, with the reason on stdout.
locate_nccl() {
  local site=$1 cuda_home=$2 inc lib dir
  if [ -n "${HOROVOD_NCCL_HOME:-}${HOROVOD_NCCL_INCLUDE:-}${HOROVOD_NCCL_LIB:-}" ]; then
    inc=${HOROVOD_NCCL_INCLUDE:-${HOROVOD_NCCL_HOME:-}/include}
    lib=${HOROVOD_NCCL_LIB:-${HOROVOD_NCCL_HOME:-}/lib}
    [ -z "${HOROVOD_NCCL_LIB:-}" ] && [ ! -d "$lib" ] && [ -d "${HOROVOD_NCCL_HOME:-}/lib64" ] && lib=$HOROVOD_NCCL_HOME/lib64
    [ -f "$inc/nccl.h" ] || { echo "no nccl.h in $inc (from HOROVOD_NCCL_HOME/HOROVOD_NCCL_INCLUDE)"; return 1; }
    if [ ! -e "$lib/libnccl.so" ] && [ ! -e "$lib/libnccl_static.a" ]; then
      if [ -e "$lib/libnccl.so.2" ]; then
        echo "$lib has libnccl.so.2 but no libnccl.so, which Horovod's CMake looks for: ln -s libnccl.so.2 $lib/libnccl.so"
      else
        echo "no libnccl.so or libnccl_static.a in $lib (from HOROVOD_NCCL_HOME/HOROVOD_NCCL_LIB)"
      fi
      return 1
    fi
    echo "$inc $lib user"
    return 0
  fi
  if [ -n "$site" ] && [ -f "$site/nvidia/nccl/include/nccl.h" ] && [ -e "$site/nvidia/nccl/lib/libnccl.so.2" ]; then
    echo "$site/nvidia/nccl/include $site/nvidia/nccl/lib wheel"
    return 0
  fi
  for dir in ${cuda_home:+"$cuda_home"} /usr /usr/local; do
    [ -f "$dir/include/nccl.h" ] || continue
    for lib in "$dir/lib64" "$dir/lib" "$dir/lib/x86_64-linux-gnu"; do
      if [ -e "$lib/libnccl.so" ] || [ -e "$lib/libnccl_static.a" ]; then
        echo "$dir/include $lib system"
        return 0
      fi
    done
  done
  echo "no NCCL: neither HOROVOD_NCCL_HOME, an nvidia-nccl-cu* wheel in ${site:-site-packages} (nvidia/nccl/{include,lib}), nor nccl.h with libnccl.so under ${cuda_home:+$cuda_home, }/usr, /usr/local"
  return 1
}

# Sets NVCC and NVCC_RELEASE for a GPU build, or dies in one line.
require_nvcc() {
  if [ -n "${HOROVOD_CUDA_HOME:-}" ] && [ ! -x "$HOROVOD_CUDA_HOME/bin/nvcc" ]; then
    die "HOROVOD_CUDA_HOME=$HOROVOD_CUDA_HOME has no bin/nvcc, which Horovod's CMake uses"
  fi
  NVCC=$(find_nvcc) ||
    die "HOROVOD_GPU_OPERATIONS=NCCL needs nvcc (the CUDA toolkit): set HOROVOD_CUDA_HOME or CUDA_HOME, or put nvcc on PATH"
  NVCC_RELEASE=$(nvcc_release "$NVCC")
}

# Exports what Horovod's CMake needs to build NCCL operations, or dies in one line before the build.
# From the wheel: HOROVOD_NCCL_INCLUDE/LIB, HOROVOD_NCCL_LINK=SHARED (the wheel has no static library,
# and the extension then shares torch's NCCL) and a libnccl.so -> libnccl.so.2 link (CMake's
# find_library looks for libnccl.so). HOROVOD_CUDA_HOME is exported from where nvcc was found, because
# Horovod's build_utils.py looks only on PATH and in $HOROVOD_CUDA_HOME/bin (default /usr/local/cuda).
# Args: site-packages with torch; torch build (torch_build); "dry" to change nothing.
# Sets NVCC, NVCC_RELEASE, NCCL_INCLUDE_DIR, NCCL_LIB_DIR and NCCL_SOURCE for the callers' logs.
prepare_nccl_build() {
  local site=$1 build=$2 dry=${3:-} cuda_home found
  [ -n "$build" ] || die "HOROVOD_GPU_OPERATIONS=NCCL needs torch, and ${site:-site-packages} has none"
  [ "$build" = cpu ] && die "HOROVOD_GPU_OPERATIONS=NCCL needs a CUDA build of torch, but $site/torch is a CPU build (torch.version.cuda is None)"
  require_nvcc
  case "$build" in
    [0-9]*) [ "${NVCC_RELEASE%%.*}" = "${build%%.*}" ] ||
      die "$NVCC is CUDA ${NVCC_RELEASE:-?} but torch was built for CUDA $build: use a CUDA ${build%%.*} toolkit (HOROVOD_CUDA_HOME)" ;;
  esac
  cuda_home=$(cd "$(dirname "$NVCC")/.." && pwd)
  export HOROVOD_CUDA_HOME=${HOROVOD_CUDA_HOME:-$cuda_home}
  found=$(locate_nccl "$site" "$cuda_home") || die "HOROVOD_GPU_OPERATIONS=NCCL: $found"
  read -r NCCL_INCLUDE_DIR NCCL_LIB_DIR NCCL_SOURCE <<<"$found"
  if [ "$NCCL_SOURCE" = wheel ]; then
    export HOROVOD_NCCL_INCLUDE=$NCCL_INCLUDE_DIR HOROVOD_NCCL_LIB=$NCCL_LIB_DIR
    export HOROVOD_NCCL_LINK=${HOROVOD_NCCL_LINK:-SHARED}
    if [ "$dry" != dry ] && [ ! -e "$NCCL_LIB_DIR/libnccl.so" ]; then
      ln -s libnccl.so.2 "$NCCL_LIB_DIR/libnccl.so" ||
        die "could not link $NCCL_LIB_DIR/libnccl.so -> libnccl.so.2 (Horovod's CMake looks for libnccl.so)"
    fi
  fi
}
