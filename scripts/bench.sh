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
cd "$(dirname "$0")/.."
MODEL=${MODEL:-open_llama_3b}
MODEL_DIR=${MODEL_DIR:-}
COUNT=${COUNT:-6}
VENV=${VENV:-llama-venv}
FORMATS=${FORMATS:-disk torchsave}
rev=$(git rev-parse --short HEAD 2>/dev/null || echo norev)
git diff --quiet HEAD 2>/dev/null || rev+=-dirty
RESULTS=${RESULTS:-results/$(date -u +%Y%m%dT%H%M%SZ)-$MODEL-$rev}
scratch=${BENCH_DIR:-$PWD/scratch}
mkdir -p "$RESULTS" "$scratch"

if [[ -n $MODEL_DIR ]]; then
	MODEL_DIR=$(cd "$MODEL_DIR" && pwd)
fi
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
			go run ./scripts/handover -out "$handover"
		fi
		{ echo "commit: $rev"; cat "$handover.config"; } >"$out.tmp"
		"$VENV/bin/python3" scripts/peers.py bench --format "$v" --handover "$handover" \
			--dir "$scratch/$v" --count "$COUNT" --model "$MODEL" >>"$out.tmp"
		rm -rf "${scratch:?}/$v"
		;;
	*)
		echo "commit: $rev" >"$out.tmp"
		BENCH_FORMATS=$v build/bench.test -test.run '^$' -test.bench . -test.benchtime 1x \
			-test.count "$COUNT" -test.timeout 0 >>"$out.tmp"
		rm -rf "${scratch:?}/$(tr / - <<<"$v")"
		;;
	esac
	mv "$out.tmp" "$out"
done
rm -f "$handover" "$handover.config"
echo "bench: raw results in $RESULTS ($(((SECONDS - start) / 60)) min)" >&2
go run ./scripts/report -results "$RESULTS" -out .
