#!/usr/bin/env bash
# Runs the whole comparison: every variant in FORMATS, one process each (so
# one format's memory and page cache never carry into the next, and only
# one checkpoint occupies the disk at a time), then writes comparison.md.
#
# Environment: MODEL (default open_llama_3b), MODEL_DIR (a Hugging Face
# directory with real weights; synthetic weights otherwise), COUNT (runs
# per benchmark, default 6), FORMATS (space-separated variant IDs),
# VENV (default llama-venv), RESULTS (output directory).
set -euo pipefail
# A relative MODEL_DIR, BENCH_DIR or RESULTS is taken from the caller's
# directory, before the script moves to the repository root.
MODEL_DIR=${MODEL_DIR:-}
if [[ -n $MODEL_DIR ]]; then
	if [[ ! -f $MODEL_DIR/config.json ]]; then
		echo "bench: MODEL_DIR=$MODEL_DIR has no config.json; point it at a Hugging Face model directory or unset it to use synthetic weights" >&2
		exit 2
	fi
	MODEL_DIR=$(cd "$MODEL_DIR" && pwd)
	# Real weights are named after their directory unless MODEL names them.
	MODEL=${MODEL:-$(basename "$MODEL_DIR")}
fi
[[ -z ${BENCH_DIR:-} || $BENCH_DIR == /* ]] || BENCH_DIR=$PWD/$BENCH_DIR
[[ -z ${RESULTS:-} || $RESULTS == /* ]] || RESULTS=$PWD/$RESULTS
cd "$(dirname "$0")/.."
MODEL=${MODEL:-open_llama_3b}
COUNT=${COUNT:-6}
VENV=${VENV:-llama-venv}
if [[ -z ${FORMATS:-} ]]; then
	echo 'bench: FORMATS is empty; name variants such as "disk t5x/raw" (make bench sets all of them)' >&2
	exit 2
fi
if [[ ! $COUNT =~ ^[1-9][0-9]*$ ]]; then
	echo "bench: COUNT=$COUNT: want a whole number of runs, 1 or more (6 or more for confidence intervals)" >&2
	exit 2
fi
py_formats="py-torch py-torch-mmap py-safetensors py-tensorstore py-t5x"
rev=$(git rev-parse --short HEAD 2>/dev/null || echo norev)
git diff --quiet HEAD 2>/dev/null || rev+=-dirty
RESULTS=${RESULTS:-results/$(date -u +%Y%m%dT%H%M%SZ)-$MODEL-$rev}
scratch=${BENCH_DIR:-$PWD/scratch}

export BENCH_MODEL=$MODEL BENCH_MODEL_DIR=$MODEL_DIR BENCH_DIR=$scratch

# The benchmark binary includes torchsave when gotch is configured.
if [[ -f build/gotch.env ]]; then
	# shellcheck disable=SC1091
	source build/gotch.env
	go test -c -tags torch -o build/bench.test ./bench
else
	echo "bench: build/gotch.env missing, building without torchsave (run make gotch)" >&2
	CGO_ENABLED=0 go test -c -o build/bench.test ./bench
fi

# Reject an unknown variant now rather than an hour into the run.
# A bare format name such as "disk" or "zarr" selects all its variants.
known=$(BENCH_LIST=1 build/bench.test | tr '\n' ' ')$py_formats
for v in $FORMATS; do
	found=
	for id in $known; do
		if [[ $id == "$v" || $id == "$v/"* ]]; then
			found=1
		fi
	done
	if [[ -z $found ]]; then
		echo "bench: FORMATS names an unknown variant \"$v\"; known: $known" >&2
		exit 2
	fi
done

# Check the model and its weights (NewSetup reads real ones) before the
# results directory is made, so a bad MODEL or MODEL_DIR leaves none.
if ! build/bench.test -test.run '^$' >/dev/null; then
	echo "bench: MODEL=$MODEL${MODEL_DIR:+ MODEL_DIR=$MODEL_DIR} cannot be benchmarked; see the error above" >&2
	exit 2
fi
mkdir -p "$RESULTS"

# fail prints the end of a variant's output, where the error is, and stops.
fail() {
	echo "bench: $1 failed; the end of $2:" >&2
	tail -n 20 "$2" >&2
	exit 1
}

# clean removes every checkpoint from the scratch directory, keeping the
# handover file for the next Python peer.
clean() {
	find "$scratch" -mindepth 1 -maxdepth 1 ! -name 'handover.safetensors*' -exec rm -rf {} +
}

handover=$scratch/handover.safetensors
n=$(wc -w <<<"$FORMATS")
i=0
start=$SECONDS
for v in $FORMATS; do
	i=$((i + 1))
	out=$RESULTS/$(tr / - <<<"$v").txt
	echo "[$i/$n] $v -> $out ($(((SECONDS - start) / 60)) min so far)" >&2
	case $v in
	py-*)
		if [[ ! -f $handover ]]; then
			echo "  writing the model once for the Python peers: $handover" >&2
			go run ./scripts/handover -out "$handover" || exit 1
		fi
		{ echo "commit: $rev"; cat "$handover.config"; } >"$out.tmp"
		"$VENV/bin/python3" scripts/peers.py bench --format "$v" --handover "$handover" \
			--dir "$scratch/$v" --count "$COUNT" --model "$MODEL" >>"$out.tmp" || fail "$v" "$out.tmp"
		;;
	*)
		echo "commit: $rev" >"$out.tmp"
		BENCH_FORMATS=$v build/bench.test -test.run '^$' -test.bench . -test.benchtime 1x \
			-test.count "$COUNT" -test.timeout 0 >>"$out.tmp" || fail "$v" "$out.tmp"
		;;
	esac
	clean
	mv "$out.tmp" "$out"
done
rm -f "$handover" "$handover.config"
echo "bench: raw results in $RESULTS ($(((SECONDS - start) / 60)) min)" >&2
go run ./scripts/report -results "$RESULTS" -out .
