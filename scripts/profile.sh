#!/usr/bin/env bash
# Records where the time goes in chosen variants' saves and loads: CPU
# profiles of the benchmark harness (bench/) on a slice of the model,
# written as `go tool pprof -top` text that the report (scripts/report)
# shows under each missed target.
#
# Usage:
#
#	RESULTS=results/<run-id> FORMATS="t5x/gzip t5x/zstd t5x/raw" scripts/profile.sh
#
# Environment:
#
#	RESULTS    results directory; profiles go to $RESULTS/profiles (required)
#	FORMATS    space-separated variant IDs as bench.sh takes them, each
#	           naming one variant (default: t5x/raw t5x/zstd t5x/gzip)
#	OPS        operations to profile, from save, load-cold and load-warm
#	           (default: save load-cold)
#	MODEL      model name (default open_llama_3b)
#	LAYERS     decoder layers to keep, passed as BENCH_LAYERS (default 2,
#	           about 0.9 GB of float16 tensors for open_llama_3b; set it
#	           empty to keep every layer)
#	RUNS       timed operations per profile (default 3)
#	NODES      functions that pprof lists (default 15)
#	BENCH_DIR  scratch directory; checkpoints go under $BENCH_DIR/profile
#	           (default scratch/profile)
#
# For each variant and operation it writes into $RESULTS/profiles, with
# <name> the variant ID with "/" replaced by "-", then the operation
# (t5x-gzip-save, t5x-gzip-load-cold):
#
#	<name>.pprof  the CPU profile, for `go tool pprof`
#	<name>.log    the benchmark's output
#	<name>.txt    "# key: value" lines, then the `go tool pprof -top` text
#
# The CPU profile covers the whole benchmark process. When the harness
# marks its timed operations with the pprof label timed=<operation>
# (save, load-cold, load-warm), only those samples are kept. Without the
# label, the samples of the harness's known untimed work are dropped by
# function name: creating, checksumming and verifying the weights,
# freeing memory, dropping the page cache and, before a load, the untimed
# save that writes the checkpoint. Samples without a frame of that work,
# such as garbage collection and goroutine scheduling, stay in, because
# pprof cannot tell which operation they served.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z ${RESULTS:-} ]]; then
	echo "profile: set RESULTS to the results directory to write profiles/ into, such as results/<run-id>" >&2
	exit 2
fi
FORMATS=${FORMATS:-t5x/raw t5x/zstd t5x/gzip}
OPS=${OPS:-save load-cold}
MODEL=${MODEL:-open_llama_3b}
LAYERS=${LAYERS-2}
RUNS=${RUNS:-3}
NODES=${NODES:-15}
scratch=${BENCH_DIR:-$PWD/scratch}/profile
mkdir -p "$RESULTS/profiles" "$scratch" build
out=$(cd "$RESULTS/profiles" && pwd)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo norev)
git diff --quiet HEAD 2>/dev/null || rev+=-dirty

for op in $OPS; do
	case $op in
	save | load-cold | load-warm) ;;
	*)
		echo "profile: OPS contains the unknown operation \"$op\": use save, load-cold or load-warm" >&2
		exit 2
		;;
	esac
done

# A binary of its own, so a `make bench` running at the same time keeps
# build/bench.test. With gotch configured it includes torchsave.
bin=build/profile-bench.test
if [[ -f build/gotch.env ]]; then
	# shellcheck disable=SC1091
	source build/gotch.env
	go test -c -tags torch -o "$bin" ./bench
else
	CGO_ENABLED=0 go test -c -o "$bin" ./bench
fi

# Untimed work of the harness (bench/setup.go, bench/run.go) that the
# fallback filter drops, as pprof -ignore patterns on function names.
setup_frames='^ckptbench/model\.|^ckptbench/bench\.checksums|^ckptbench/bench\.\(\*Setup\)\.Verify$|^ckptbench/bench\.FreeMemory$|^ckptbench/iox\.DropCache$'
# A load benchmark first saves the checkpoint, untimed. Its frames are the
# format's Save method and closures, and functions in a format's save.go
# or write.go (pprof also matches file names).
save_frames='^ckptbench/formats/.*\.Save(\.func[0-9.]+)?$|/formats/[^/]+/(save|write)\.go$'

failed=0
for v in $FORMATS; do
	case $v in
	py-*)
		echo "profile: $v runs in Python; this script profiles the Go variants only" >&2
		failed=1
		continue
		;;
	esac
	for op in $OPS; do
		name=$(tr / - <<<"$v")-$op
		base=$out/$name
		# Sub-benchmark names are BenchmarkLoad/format=F[/codec=C or
		# /streams=N][/verify=load]/model=M/cache=C, and go test matches
		# a pattern element by element, so the cache is matched by its
		# position.
		if [[ $op == save ]]; then
			pattern='^BenchmarkSave$'
			what="save"
		else
			levels=2
			[[ $v == */* ]] && levels=$((levels + 1))
			[[ $v == *+verify ]] && levels=$((levels + 1))
			pattern='^BenchmarkLoad$'
			for ((i = 0; i < levels; i++)); do pattern+='/.'; done
			pattern+="/^cache=${op#load-}\$"
			what="${op#load-} load"
		fi
		echo "[$v $what] -> $base.txt" >&2
		rm -rf "${scratch:?}/$(tr / - <<<"$v")"
		if ! BENCH_FORMATS=$v BENCH_MODEL=$MODEL BENCH_LAYERS=$LAYERS BENCH_DIR=$scratch BENCH_QUIET=1 \
			"$bin" -test.run '^$' -test.bench "$pattern" -test.benchtime "${RUNS}x" -test.count 1 \
			-test.timeout 0 -test.cpuprofile "$base.pprof" >"$base.log" 2>&1; then
			echo "profile: the $v $what benchmark failed; see $base.log" >&2
			failed=1
			continue
		fi
		rm -rf "${scratch:?}/$(tr / - <<<"$v")"
		# The test binary exits 0 even when it cannot write the profile.
		if [[ ! -s $base.pprof ]]; then
			echo "profile: the $v $what benchmark wrote no profile to $base.pprof; see $base.log" >&2
			failed=1
			continue
		fi
		results=$(grep -c '^Benchmark.*ns/op' "$base.log" || true)
		if [[ $results != 1 ]]; then
			echo "profile: $base.log has $results result lines, expected 1: $v must name one variant that has a $what (such as t5x/gzip, not t5x, and for save not a load-only +verify copy)" >&2
			failed=1
			continue
		fi

		if go tool pprof -tags "$base.pprof" 2>/dev/null | grep -q '^ *timed:'; then
			filter=(-tagfocus="timed=^$op\$")
			filter_text="the timed ${what}s alone (pprof label timed=$op)"
			timed_only=yes
		else
			ignore=$setup_frames
			[[ $op == save ]] || ignore+="|$save_frames"
			filter=(-ignore="$ignore")
			filter_text="the whole benchmark process except the harness's known untimed work (the benchmark has no pprof label timed=$op), so garbage collection and goroutine scheduling of that work stay in"
			timed_only=no
		fi
		if ! {
			echo "# profile: $v $what"
			echo "# model: $(sed -n 's/^model: //p' "$base.log" | head -1)"
			echo "# tensor-bytes: $(sed -n 's/^tensor-bytes: //p' "$base.log" | head -1)"
			echo "# result: $(grep -m1 '^Benchmark.*ns/op' "$base.log" | tr -s ' \t' ' ')"
			echo "# filter: $filter_text"
			echo "# timed-only: $timed_only"
			echo "# recorded: $(date -u +%Y-%m-%dT%H:%M:%SZ) at commit $rev by scripts/profile.sh"
			echo "# pprof: go tool pprof -top -nodecount=$NODES -relative_percentages ${filter[*]} $name.pprof"
			go tool pprof -top -nodecount="$NODES" -relative_percentages "${filter[@]}" "$base.pprof"
		} >"$base.txt.tmp"; then
			echo "profile: go tool pprof failed on $base.pprof" >&2
			rm -f "$base.txt.tmp"
			failed=1
			continue
		fi
		mv "$base.txt.tmp" "$base.txt"
	done
done
echo "profile: profiles in $out; rerun the report to include them" >&2
exit $failed
