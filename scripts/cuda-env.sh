# shellcheck shell=bash
# A CUDA toolchain for `cargo build --release --features cuda`, on any x86_64 Linux machine, GPU or not.
#
#     source scripts/cuda-env.sh       # installs once, then only sets the environment
#     cargo build --release --features cuda
#
# NVIDIA ships the CUDA toolkit on PyPI. The CUDA 12 wheels have no `nvcc` (nvidia-cuda-nvcc-cu12 holds
# only ptxas and libnvvm), so this uses the CUDA 13.0 wheels, which lay out one toolkit tree,
# site-packages/nvidia/cu13/{bin,include,lib,nvvm}. The pinned meta-package `cuda-toolkit==13.0.2`
# brings the parts candle 0.11.1's `cuda` feature needs:
#   nvcc, nvvm (cicc), crt   compile candle-kernels' .cu files (the crate's build.rs runs nvcc through
#                            cudaforge: PTX for the ops, plus a static libmoe.a)
#   cccl, cudart             headers the kernels include; libcudart, linked by candle-kernels
#   cublas, curand, nvrtc    linked by cudarc (candle-core turns on its `dynamic-linking`)
# Version 13.0 (not the newest) because the PTX it writes (ISA 9.0) is what the oldest CUDA 13 driver
# (R580) can load; a newer toolkit would ask for a newer driver on the GPU machine.
#
# What the script adds to the wheels, in the toolkit tree inside the venv:
#   lib/libNAME.so -> libNAME.so.N   the linker looks for unversioned names; the wheels ship only .so.N
#   lib64 -> lib                     where cudaforge looks for the libraries
#   lib/stubs/libcuda.so             the driver API (libcuda) comes with the NVIDIA driver, not with the
#                                    toolkit wheels; cudarc links it, so a stub with soname libcuda.so.1
#                                    (every cu* function of cuda.h, returning CUDA_ERROR_STUB_LIBRARY)
#                                    lets the build link. At run time the driver's real libcuda.so.1 is
#                                    loaded; lib/stubs is never on LD_LIBRARY_PATH.
#
# Environment it sets: CUDA_HOME, CUDA_PATH, CUDA_ROOT (cudarc and cudaforge find the toolkit through
# them), NVCC, PATH (nvcc first), LIBRARY_PATH (link time), LD_LIBRARY_PATH (cudart, cublas, curand and
# nvrtc at run time), and CUDA_COMPUTE_CAP. With no GPU, candle-kernels cannot ask nvidia-smi for the
# compute capability, so it defaults here to 80: the PTX is compiled for compute_80, and the driver
# JIT-compiles it for any GPU of capability 8.0 or newer (A100 8.0, RTX 30xx 8.6, L4/L40/RTX 40xx 8.9,
# H100/H200 9.0). Set CUDA_COMPUTE_CAP=90 (or other) before sourcing to build for one GPU exactly;
# a GPU older than the value cannot run the kernels.
#
# Other knobs: MEMGEN_CUDA_VENV (default .venv-cuda at the repository root, git-ignored).
# Sourcing it twice installs nothing and adds nothing twice. Run directly (bash scripts/cuda-env.sh),
# it installs and prints the variables.

_memgen_cuda_env() {
    local root venv spec home site py lib name
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
    venv="${MEMGEN_CUDA_VENV:-$root/.venv-cuda}"
    spec='cuda-toolkit[nvcc,nvvm,crt,cudart,cccl,nvrtc,cublas,curand]==13.0.2'

    # Install, unless this exact spec is already in the venv.
    if [ "$(cat "$venv/.memgen-cuda-spec" 2>/dev/null)" != "$spec" ]; then
        echo "cuda-env: installing $spec into $venv (about 1.2 GB)" >&2
        py="$(command -v python3 || command -v python)" || { echo "cuda-env: python3 not found" >&2; return 1; }
        [ -x "$venv/bin/python" ] || "$py" -m venv "$venv" || return 1
        "$venv/bin/python" -m pip install --disable-pip-version-check --quiet "$spec" || {
            echo "cuda-env: pip install failed" >&2
            return 1
        }
    fi
    site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || return 1
    home="$site/nvidia/cu13"
    [ -x "$home/bin/nvcc" ] || { echo "cuda-env: $home/bin/nvcc missing; remove $venv and source again" >&2; return 1; }
    lib="$home/lib"

    # Unversioned names for the linker.
    for name in cudart cublas cublasLt curand nvrtc; do
        if [ ! -e "$lib/lib$name.so" ]; then
            local versioned
            versioned="$(cd "$lib" && ls "lib$name".so.[0-9]* 2>/dev/null | grep -v builtins | head -n 1)"
            [ -n "$versioned" ] || { echo "cuda-env: no lib$name.so.N in $lib" >&2; return 1; }
            ln -sfn "$versioned" "$lib/lib$name.so"
        fi
    done
    [ -e "$home/lib64" ] || ln -sfn lib "$home/lib64"

    # The driver stub (see above).
    if [ ! -e "$lib/stubs/libcuda.so" ]; then
        mkdir -p "$lib/stubs" || return 1
        "$venv/bin/python" - "$home/include" "$lib/stubs/libcuda_stub.c" <<'EOF' || return 1
import re, subprocess, sys
inc, out = sys.argv[1], sys.argv[2]
pre = subprocess.run(["cc", "-E", "-P", "-I", inc, "-x", "c", "-"], input="#include <cuda.h>\n",
                     text=True, stdout=subprocess.PIPE, check=True).stdout
names = sorted(set(re.findall(r"\bCUresult\s+(cu[A-Za-z0-9_]+)\s*\(", pre)))
if len(names) < 100:
    sys.exit(f"cuda-env: only {len(names)} driver functions found in cuda.h")
with open(out, "w") as f:
    f.write("/* Generated by scripts/cuda-env.sh: link-time stand-in for the driver's libcuda.so.1. */\n")
    for n in names:
        f.write(f"int {n}(void) {{ return 34; /* CUDA_ERROR_STUB_LIBRARY */ }}\n")
EOF
        cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$lib/stubs/libcuda.so" "$lib/stubs/libcuda_stub.c" || {
            echo "cuda-env: could not build the libcuda stub" >&2
            return 1
        }
    fi
    echo "$spec" >"$venv/.memgen-cuda-spec"

    # Environment; each path is added once.
    _memgen_prepend() { # VAR DIR
        local cur="${!1-}"
        case ":$cur:" in *":$2:"*) ;; *) export "$1=$2${cur:+:$cur}" ;; esac
    }
    export CUDA_HOME="$home" CUDA_PATH="$home" CUDA_ROOT="$home" NVCC="$home/bin/nvcc"
    _memgen_prepend PATH "$home/bin"
    _memgen_prepend LIBRARY_PATH "$lib/stubs"
    _memgen_prepend LIBRARY_PATH "$lib"
    _memgen_prepend LD_LIBRARY_PATH "$lib"
    unset -f _memgen_prepend
    export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-80}"
}

if _memgen_cuda_env; then
    unset -f _memgen_cuda_env
    if [ "${BASH_SOURCE[0]}" = "$0" ]; then
        echo "cuda-env: ready; source this script to use it. It sets:"
        for v in CUDA_HOME NVCC CUDA_COMPUTE_CAP LIBRARY_PATH LD_LIBRARY_PATH; do echo "  $v=${!v}"; done
    fi
else
    unset -f _memgen_cuda_env
    echo "cuda-env: failed; the environment is unchanged or partly set" >&2
    # shellcheck disable=SC2317
    return 1 2>/dev/null || exit 1
fi
