#!/usr/bin/env bash
# Checks that memgen builds with `--features cuda` (Candle's CUDA backend and kernels included) on a
# machine without a GPU: installs the toolkit through scripts/cuda-env.sh, builds into its own target
# directory and reports the build time and the binary's size. Nothing runs on a GPU.
#
#     bash scripts/check-cuda-build.sh            # CARGO_TARGET_DIR defaults to target/cuda
#     CUDA_COMPUTE_CAP=90 bash scripts/check-cuda-build.sh
#
# A cold build compiles candle-kernels' CUDA sources with nvcc as well as the whole Rust workspace
# (see the README's section on GPUs for the times measured). Extra arguments go to cargo build.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/cuda-env.sh
source scripts/cuda-env.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/cuda}"

echo "check-cuda-build: $(nvcc --version | grep release), CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP, target dir $CARGO_TARGET_DIR"
start=$(date +%s)
cargo build --release --features cuda --bin memgen "$@"
secs=$(( $(date +%s) - start ))

bin="$CARGO_TARGET_DIR/release/memgen"
size=$(stat -c %s "$bin")
# The binary must carry the CUDA backend: candle's PTX kernels and a link to the driver API.
if ! grep -q -a '.target sm_' "$bin"; then
    echo "check-cuda-build: FAIL: no PTX kernels in $bin" >&2
    exit 1
fi
if ! readelf -d "$bin" | grep -q 'libcuda.so.1'; then
    echo "check-cuda-build: FAIL: $bin does not link libcuda.so.1" >&2
    exit 1
fi
# The binary needs libcuda.so.1, which only an NVIDIA driver installs. Where there is none, run it
# against the link stub (its every call fails with CUDA_ERROR_STUB_LIBRARY): it must work on the CPU
# and refuse `--device cuda:0` as a usage error (exit 2), as a build without the cuda feature does.
stubs="$CUDA_HOME/lib/stubs"
run_env=()
if ! ldconfig -p 2>/dev/null | grep -q 'libcuda.so.1 '; then
    ln -sfn libcuda.so "$stubs/libcuda.so.1"
    run_env=(env "LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$stubs")
fi
"${run_env[@]}" "$bin" --version
set +e
msg=$("${run_env[@]}" "$bin" denoise-error /nonexistent --data /nonexistent --device cuda:0 2>&1 >/dev/null)
rc=$?
set -e
echo "check-cuda-build: \`denoise-error --device cuda:0\` exits $rc: $msg"
echo "check-cuda-build: ok: built in ${secs}s; $bin is $((size / 1024 / 1024)) MiB ($size bytes)"
echo "check-cuda-build: it needs, at run time, an NVIDIA driver for CUDA 13 (R580 or newer) and the"
echo "check-cuda-build: toolkit's libraries on LD_LIBRARY_PATH: source scripts/cuda-env.sh first"
