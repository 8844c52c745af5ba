#!/usr/bin/env bash
# Records the gate's fixtures under testdata/results/gate/ from real runs
# of the stand-in benchmark in scripts/gate/testdata/standin: four sets of
# reruns of unchanged code (rerun-1.txt .. rerun-4.txt) and one set with a
# 30% slowdown injected inside the timed region (slow30.txt). The sets are
# interleaved round by round, as scripts/compare.sh runs old and new, so
# drift in the machine's load spreads over all of them.
#
# Usage: scripts/gate/testdata/record.sh [ROUNDS]   (default 10)
set -euo pipefail

rounds=${1:-10}
root=$(git rev-parse --show-toplevel)
out=$root/testdata/results/gate
bin=$root/build/standin.test
mkdir -p "$out" "$root/build"

cd "$root"
go test -c -o "$bin" ./scripts/gate/testdata/standin

# 100 iterations per sample keep one sample of the slowest benchmark
# (the save, about 30 ms per iteration here) near 3 s.
run() {
	(cd "$root/scripts/gate/testdata/standin" &&
		"$bin" -test.run '^$' -test.bench . -test.benchtime 100x -test.count 1)
}

for f in rerun-1 rerun-2 rerun-3 rerun-4 slow30; do
	: >"$out/$f.txt"
done
for ((i = 1; i <= rounds; i++)); do
	echo "round $i of $rounds" >&2
	for f in rerun-1 rerun-2 rerun-3 rerun-4; do
		run >>"$out/$f.txt"
	done
	STANDIN_SLOWDOWN=0.3 run >>"$out/slow30.txt"
done
