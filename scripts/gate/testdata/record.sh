#!/usr/bin/env bash
# Records the gate's fixtures from real runs on this machine. Every set is
# interleaved round by round with the others, as scripts/compare.sh runs
# old and new, so drift in the machine's load spreads over all of them.
#
# Usage: scripts/gate/testdata/record.sh [standin|bench] [ROUNDS]
#
#   standin (default): the stand-in benchmark in
#     scripts/gate/testdata/standin, 100 iterations per sample, into
#     testdata/results/gate/: four sets of reruns of unchanged code
#     (rerun-1.txt .. rerun-4.txt) and one set with a 30% slowdown
#     injected inside the timed region (slow30.txt).
#   bench: the real harness (./bench) on the tiny model, BENCHTIME
#     iterations per sample (default 1x, as scripts/bench.sh runs it) of
#     FORMATS (default disk,zarr/raw,zarr/gzip,safetensors/read,t5x/raw),
#     into testdata/results/gate/bench-tiny-$BENCHTIME/rerun-1.txt ..
#     rerun-4.txt. The 10x set was recorded with
#     BENCHTIME=10x FORMATS=disk,zarr/raw,safetensors/read.
#
# ROUNDS defaults to 10: runs per set.
set -euo pipefail

mode=${1:-standin}
rounds=${2:-10}
root=$(git rev-parse --show-toplevel)
mkdir -p "$root/build"
cd "$root"

case $mode in
standin)
	out=$root/testdata/results/gate
	bin=$root/build/standin.test
	pkgdir=$root/scripts/gate/testdata/standin
	go test -c -o "$bin" ./scripts/gate/testdata/standin
	# 100 iterations per sample keep one sample of the slowest benchmark
	# (the save, about 30 ms per iteration here) near 3 s.
	args=(-test.run '^$' -test.bench . -test.benchtime 100x -test.count 1)
	sets=(rerun-1 rerun-2 rerun-3 rerun-4 slow30)
	;;
bench)
	benchtime=${BENCHTIME:-1x}
	out=$root/testdata/results/gate/bench-tiny-$benchtime
	bin=$root/build/bench-tiny.test
	pkgdir=$root/bench
	CGO_ENABLED=0 go test -c -o "$bin" ./bench
	export BENCH_MODEL=tiny_llama BENCH_FORMATS=${FORMATS:-disk,zarr/raw,zarr/gzip,safetensors/read,t5x/raw}
	export BENCH_DIR=$root/build/record-scratch BENCH_QUIET=1
	args=(-test.run '^$' -test.bench . -test.benchtime "$benchtime" -test.count 1 -test.timeout 0)
	sets=(rerun-1 rerun-2 rerun-3 rerun-4)
	;;
*)
	echo "usage: $0 [standin|bench] [ROUNDS]" >&2
	exit 2
	;;
esac

mkdir -p "$out"
for f in "${sets[@]}"; do
	: >"$out/$f.txt"
done
for ((i = 1; i <= rounds; i++)); do
	echo "round $i of $rounds" >&2
	for f in "${sets[@]}"; do
		slowdown=0
		if [[ $f == slow30 ]]; then slowdown=0.3; fi
		(cd "$pkgdir" && STANDIN_SLOWDOWN=$slowdown "$bin" "${args[@]}") >>"$out/$f.txt"
	done
done
