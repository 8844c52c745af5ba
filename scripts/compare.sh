#!/usr/bin/env bash
# Compares the benchmarks of two revisions and gates on the result.
#
#   make compare OLD=<rev> [NEW=<rev>]
#   scripts/compare.sh OLD [NEW]          (NEW defaults to HEAD)
#
# Each revision is checked out in a git worktree under build/compare/
# (committed changes only), and its benchmark test binary is built there
# with `go test -c`. The two binaries then run interleaved, old, new, old,
# new, COUNT times with the same environment, so drift in the machine's
# load hits both alike. The results go to build/compare/old.txt and
# new.txt. The script prints benchstat's comparison, then the verdict of
# scripts/gate (built from the current checkout), and exits with the
# gate's status: 0 pass, 1 fail, 2 invalid command line.
#
# Environment:
#   MODEL      model to benchmark (sets BENCH_MODEL; default: the harness's)
#   FORMATS    formats, separated by commas or spaces (sets BENCH_FORMATS;
#              default: all); Python peers (py-*) are skipped
#   COUNT      runs of each side (default 10; the U test needs 4 or more
#              per side to reach p <= 0.05)
#   BENCH      benchmark regexp (default .)
#   BENCHTIME  -test.benchtime for each run (default: the harness's)
#   PKG        package to benchmark (default ./bench)
#   GATE_FLAGS flags for scripts/gate, such as "-threshold 0.05"
#   BENCH_*    passed through to the harness (BENCH_DIR defaults to
#              build/compare/scratch, shared by both sides)
set -euo pipefail

usage() {
	echo "usage: make compare OLD=<rev> [NEW=<rev>]   or   scripts/compare.sh OLD [NEW]" >&2
	exit 2
}

old_rev=${1:-${OLD:-}}
new_rev=${2:-${NEW:-}}
new_rev=${new_rev:-HEAD}
[[ -n $old_rev ]] || usage

root=$(git rev-parse --show-toplevel)
work=$root/build/compare
pkg=${PKG:-./bench}
count=${COUNT:-10}
bench=${BENCH:-.}
[[ $count =~ ^[1-9][0-9]*$ ]] || { echo "compare: invalid COUNT=$count: want a positive integer" >&2; exit 2; }

old_sha=$(git -C "$root" rev-parse --verify --quiet "$old_rev^{commit}") ||
	{ echo "compare: OLD=$old_rev is not a revision of this repository" >&2; exit 2; }
new_sha=$(git -C "$root" rev-parse --verify --quiet "$new_rev^{commit}") ||
	{ echo "compare: NEW=$new_rev is not a revision of this repository" >&2; exit 2; }

# Both sides see the same harness settings.
if [[ -n ${MODEL:-} ]]; then export BENCH_MODEL=$MODEL; fi
if [[ -n ${FORMATS:-} ]]; then
	# The Python peers run from scripts/bench.sh, not from the Go test
	# binary, so their IDs are dropped here rather than rejected by it.
	go_formats=()
	for f in ${FORMATS//,/ }; do
		if [[ $f == py-* ]]; then
			echo "compare: skipping $f: compare runs the Go harness only" >&2
		else
			go_formats+=("$f")
		fi
	done
	if ((${#go_formats[@]} == 0)); then
		echo "compare: FORMATS=$FORMATS names no Go format; name at least one, such as zarr/raw" >&2
		exit 2
	fi
	BENCH_FORMATS=$(IFS=,; echo "${go_formats[*]}")
	export BENCH_FORMATS
fi
export BENCH_DIR=${BENCH_DIR:-$work/scratch}
# The binaries run inside the worktrees, so relative paths would point
# into them; the Python venv and the weights live in this checkout.
if [[ -n ${BENCH_MODEL_DIR:-} && $BENCH_MODEL_DIR != /* ]]; then
	export BENCH_MODEL_DIR=$root/$BENCH_MODEL_DIR
fi
export LLAMA_VENV=${LLAMA_VENV:-$root/llama-venv}
# Like scripts/bench.sh: with gotch's cgo settings (written by
# scripts/gotch/setup.sh) the binaries include torchsave, else they are
# built without cgo.
build_flags=()
if [[ -f $root/build/gotch.env ]]; then
	# shellcheck source=/dev/null
	source "$root/build/gotch.env"
	build_flags=(-tags torch)
else
	echo "compare: build/gotch.env missing, building without torchsave (run make gotch)" >&2
	export CGO_ENABLED=0
fi

mkdir -p "$work" "$BENCH_DIR"

remove_worktree() {
	local dir=$1
	if [[ -e $dir ]]; then
		git -C "$root" worktree remove --force "$dir" 2>/dev/null || rm -rf "$dir"
	fi
	git -C "$root" worktree prune
}
cleanup() {
	remove_worktree "$work/old"
	remove_worktree "$work/new"
}
trap cleanup EXIT

# workspace_for prints the go.work a worktree builds with. gotch.env's
# GOWORK uses this checkout's module and replaces gotch with the patched
# copy under build/gotch. Each worktree gets a copy that uses the
# worktree instead, because otherwise both sides would build this
# checkout.
workspace_for() {
	local dir=$1 side=$2
	if [[ -z ${GOWORK:-} || $GOWORK == off ]]; then
		echo off
		return
	fi
	local base
	base=$(dirname "$GOWORK")
	sed -e "s|^use .*|use $dir|" -e "s|=> \./|=> $base/|" "$GOWORK" >"$work/$side.go.work"
	echo "$work/$side.go.work"
}

for side in old new; do
	sha_var=${side}_sha
	sha=${!sha_var}
	dir=$work/$side
	remove_worktree "$dir"
	git -C "$root" worktree add --quiet --detach "$dir" "$sha"
	if [[ ! -d $dir/$pkg ]]; then
		echo "compare: $side revision $sha has no package $pkg; pick a revision that has it, or set PKG" >&2
		exit 2
	fi
	echo "compare: building $side ($sha) $pkg" >&2
	(cd "$dir" && GOWORK=$(workspace_for "$dir" "$side") go test -c "${build_flags[@]}" -o "$work/$side.test" "$pkg")
	: >"$work/$side.txt"
done

run_side() {
	local side=$1
	local args=(-test.run '^$' -test.bench "$bench" -test.count 1 -test.timeout 0)
	if [[ -n ${BENCHTIME:-} ]]; then args+=(-test.benchtime "$BENCHTIME"); fi
	# go test runs a test binary in its package directory; do the same.
	(cd "$work/$side/$pkg" && "$work/$side.test" "${args[@]}") >>"$work/$side.txt"
}

for ((i = 1; i <= count; i++)); do
	echo "compare: round $i of $count" >&2
	run_side old
	run_side new
done

echo
echo "benchstat $work/old.txt $work/new.txt"
perf_version=$(cd "$root" && go list -m -f '{{.Version}}' golang.org/x/perf)
(cd "$root" && go run "golang.org/x/perf/cmd/benchstat@$perf_version" "$work/old.txt" "$work/new.txt") ||
	echo "compare: benchstat failed; the gate below still judges" >&2

echo
# Built rather than run with `go run`, which turns every failing exit
# status into 1.
(cd "$root" && go build -o "$work/gate" ./scripts/gate)
status=0
# shellcheck disable=SC2086 # GATE_FLAGS is a list of flags.
"$work/gate" ${GATE_FLAGS:-} "$work/old.txt" "$work/new.txt" || status=$?
exit "$status"
