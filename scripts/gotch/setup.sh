#!/usr/bin/env bash
# Configures cgo builds of gotch v0.9.1 against the libtorch inside
# llama-venv's torch wheel, without editing gotch's source in the module
# cache and without committing a copy of it.
#
# gotch's libtch/lib.go links the CUDA libraries unconditionally, and its
# own setup script rewrites that file in the module cache. Here a
# replacement is generated under build/ instead. `go build -overlay`
# cannot swap it in, because the go command rejects overlays of files
# beneath GOMODCACHE, so a workspace file replaces the gotch module with a
# mirror of it: symbolic links to the module cache for every file except
# libtch/lib.go. The script writes, all git-ignored:
#
#   build/gotch/gotch-<version>/  the mirror; libtch/lib.go links the CPU
#                                 or the CUDA libraries
#   build/gotch/go.work           uses the repository's module, replaces
#                                 github.com/sugarme/gotch with the mirror
#   build/gotch.env               `export` lines (CGO_ENABLED, CGO_CFLAGS,
#                                 CGO_CXXFLAGS, CGO_LDFLAGS, GOWORK, GOFLAGS)
#                                 to source before any build or test that
#                                 uses libtorch
#
# It is idempotent: a second run rewrites nothing unless an input changed.
#
# Usage: scripts/gotch/setup.sh [--build]
#   --build   also compile gotch, so the first `go test` with the torch tag
#             does not wait for it. libtch/torch_api.cpp takes minutes on
#             2 cores, and the Go build cache keeps the result.
#
# Environment:
#   LLAMA_VENV    venv whose torch wheel provides libtorch
#                 (default: llama-venv in the repository root)
#   GOTCH_DEVICE  cpu or cuda, to override the detection below
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv=${LLAMA_VENV:-$root/llama-venv}
out=$root/build/gotch
env_file=$root/build/gotch.env

build=0
for arg in "$@"; do
	case $arg in
	--build) build=1 ;;
	*)
		echo "setup.sh: unknown argument $arg (usage: setup.sh [--build])" >&2
		exit 2
		;;
	esac
done

die() {
	echo "setup.sh: $*" >&2
	exit 1
}

# The torch package inside the venv. A glob rather than `import torch`,
# because importing the CUDA wheel takes seconds.
shopt -s nullglob
torch_dirs=("$venv"/lib/python3*/site-packages/torch)
shopt -u nullglob
[[ ${#torch_dirs[@]} -eq 1 ]] ||
	die "expected one torch package under $venv/lib/python3*/site-packages, found ${#torch_dirs[@]}; run \`make venv\` or set LLAMA_VENV"
torch=${torch_dirs[0]}
for need in include/torch/csrc/api/include lib/libc10.so lib/libtorch_cpu.so; do
	[[ -e $torch/$need ]] || die "$torch/$need is missing; the torch wheel in $venv is incomplete (reinstall it with \`make venv\`)"
done
torch_version=$(sed -n "s/^__version__ = '\(.*\)'/\1/p" "$torch/version.py")

# The C++ ABI libtorch was built with. The PyPI wheels of torch 2.1 use the
# pre-C++11 ABI (0); code compiled with the other one fails to link on
# std::string arguments. TorchConfig.cmake in the wheel records the define.
abi=$(sed -n 's/.*-D_GLIBCXX_USE_CXX11_ABI=\([01]\).*/\1/p' "$torch/share/cmake/Torch/TorchConfig.cmake" 2>/dev/null | head -n 1)
if [[ -z $abi ]]; then
	abi=$("$venv/bin/python3" -c 'import torch; print(int(torch.compiled_with_cxx11_abi()))') ||
		die "cannot tell which C++ ABI $torch was built with"
fi

# CUDA only when the wheel has CUDA libraries and the machine has a GPU
# with a driver: nvidia-smi listing a GPU, or (in containers without
# nvidia-smi) the driver library plus a device node.
has_gpu() {
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
		return 0
	fi
	ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1' && compgen -G '/dev/nvidia[0-9]*' >/dev/null
}
device=${GOTCH_DEVICE:-}
if [[ -z $device ]]; then
	device=cpu
	if [[ -e $torch/lib/libtorch_cuda.so ]] && has_gpu; then
		device=cuda
	fi
fi
case $device in
cpu) ;;
cuda)
	[[ -e $torch/lib/libtorch_cuda.so ]] || die "GOTCH_DEVICE=cuda, but $torch/lib has no libtorch_cuda.so (a CPU-only wheel)"
	;;
*) die "GOTCH_DEVICE is \"$device\"; it must be cpu or cuda" ;;
esac

# gotch's directory in the module cache, at the version go.mod requires.
cd "$root"
gotch_dir=$(GOFLAGS= go list -m -f '{{.Dir}}' github.com/sugarme/gotch 2>/dev/null || true)
if [[ -z $gotch_dir || ! -d $gotch_dir ]]; then
	go mod download github.com/sugarme/gotch
	gotch_dir=$(GOFLAGS= go list -m -f '{{.Dir}}' github.com/sugarme/gotch)
fi
[[ -f $gotch_dir/libtch/lib.go && -f $gotch_dir/libtch/torch_api.cpp ]] ||
	die "$gotch_dir does not look like gotch's source (no libtch/lib.go)"

# write_if_changed FILE: replace FILE with standard input unless the
# content is the same, so reruns leave files and their times untouched.
write_if_changed() {
	local tmp
	tmp=$(mktemp "$1.XXXXXX")
	cat >"$tmp"
	if [[ -f $1 && ! -L $1 ]] && cmp -s "$tmp" "$1"; then
		rm -f "$tmp"
	else
		mv -f "$tmp" "$1"
		echo "setup.sh: wrote ${1#"$root"/}"
	fi
}

# link_if_changed TARGET LINK: point LINK at TARGET unless it already does.
link_if_changed() {
	if [[ $(readlink "$2" 2>/dev/null) != "$1" ]]; then
		rm -rf "$2"
		ln -s "$1" "$2"
	fi
}

# The mirror of the module: one link per top-level entry, except libtch,
# which is a real directory of links plus the generated lib.go. Mirrors of
# other gotch versions are removed.
version=$(basename "$gotch_dir")
version=${version#gotch@}
mirror=$out/gotch-$version
mkdir -p "$mirror/libtch"
for old in "$out"/gotch-*; do
	[[ $old == "$mirror" ]] || rm -rf "$old"
done
for entry in "$gotch_dir"/* "$gotch_dir"/.[!.]*; do
	[[ -e $entry ]] || continue
	name=$(basename "$entry")
	[[ $name == libtch ]] || link_if_changed "$entry" "$mirror/$name"
done
for entry in "$gotch_dir"/libtch/*; do
	name=$(basename "$entry")
	[[ $name == lib.go ]] || link_if_changed "$entry" "$mirror/libtch/$name"
done

# The libraries to link. For CPU, libc10 and libtorch_cpu hold every symbol
# torch_api.cpp uses. For CUDA, libtorch_cuda and libc10_cuda must be loaded
# too, although nothing references them directly: they register the CUDA
# backend when loaded. The linker defaults to --as-needed, which would drop
# them and make CUDA look unavailable, hence --no-as-needed around them.
# (The wheel's libtorch.so is only a shim that pulls in both. In torch
# 2.1.0+cu121, libtorch_cpu also dlopens libnvfuser_codegen.so at start-up,
# which loads the CUDA libraries even in a CPU build.)
if [[ $device == cuda ]]; then
	libs='-lstdc++ -lc10 -ltorch_cpu -Wl,--no-as-needed -ltorch_cuda -lc10_cuda -Wl,--as-needed'
else
	libs='-lstdc++ -lc10 -ltorch_cpu'
fi
write_if_changed "$mirror/libtch/lib.go" <<GO
// Code generated by scripts/gotch/setup.sh for $device; DO NOT EDIT.
// It replaces gotch's libtch/lib.go, which links the CUDA libraries
// unconditionally. Include and library paths come from build/gotch.env.

package libtch

// #cgo CFLAGS: -I\${SRCDIR}
// #cgo CXXFLAGS: -std=c++17 -I\${SRCDIR} -Wno-deprecated-declarations -Wno-unused-variable -Wno-unused-function -Wno-sign-compare
// #cgo LDFLAGS: $libs
import "C"
GO

# The workspace's go version is the toolchain's, which is at least the
# version any module it builds requires.
write_if_changed "$out/go.work" <<WORK
// Generated by scripts/gotch/setup.sh; selected by GOWORK in build/gotch.env.
go $(go env GOVERSION | sed 's/^go//')

use $root

replace github.com/sugarme/gotch => ./gotch-$version
WORK

# The venv's include and library paths come first on every command line,
# because cgo puts CGO_* flags before a package's #cgo flags and the
# compiler searches -I and -L directories before the system ones. So a
# libtorch installed elsewhere, such as Debian's libtorch 1.13 under /usr,
# is never picked up.
#
# The rpath lets binaries find libtorch without LD_LIBRARY_PATH. The
# wheel's own libraries find their dependencies (libgomp, the nvidia-* pip
# libraries) through their $ORIGIN-relative runpaths.
#
# -O1 because torch_api.cpp only forwards calls into libtorch, so its
# optimization level does not show in any measurement, and a lower level
# compiles faster.
includes="-I$torch/include -I$torch/include/torch/csrc/api/include"
write_if_changed "$env_file" <<ENV
# Generated by scripts/gotch/setup.sh; source it before cgo builds that use
# libtorch: . build/gotch.env && go test ./formats/torchsave
# torch $torch_version from $torch, device $device, C++ ABI $abi.
export CGO_ENABLED=1
export CGO_CFLAGS="-O2 -g"
export CGO_CXXFLAGS="$includes -D_GLIBCXX_USE_CXX11_ABI=$abi -O1"
export CGO_LDFLAGS="-L$torch/lib -Wl,-rpath,$torch/lib"
export GOWORK="$out/go.work"
export GOFLAGS=-tags=torch
ENV

echo "setup.sh: gotch $(basename "$gotch_dir") against torch $torch_version ($device, C++ ABI $abi); source build/gotch.env"

if [[ $build == 1 ]]; then
	# shellcheck source=/dev/null
	. "$env_file"
	start=$(date +%s)
	go build github.com/sugarme/gotch/ts
	echo "setup.sh: built gotch in $(($(date +%s) - start)) s"
fi
