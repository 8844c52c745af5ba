#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME each.
#
#   scripts/fuzz.sh                  10 s per target, as make test runs it
#   FUZZTIME=5m scripts/fuzz.sh      longer, on demand (make fuzz FUZZTIME=5m)
#
# The targets are found by name (func FuzzX in a _test.go file), so new
# ones run without a change here. go test -fuzz takes one target of one
# package per run, so they run one after another. No target needs
# libtorch, so the build has cgo off. A failing input is saved under the
# package's testdata/fuzz/<target>/ directory, where plain go test runs
# it again; the script then exits with status 1 after the other targets.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-10s}
export CGO_ENABLED=0 GOTOOLCHAIN=local

mapfile -t dirs < <(grep -rl --include='*_test.go' -E '^func Fuzz[A-Z0-9_]' . \
	--exclude-dir=.git --exclude-dir=build --exclude-dir=scratch --exclude-dir=llama-venv --exclude-dir=models \
	| xargs -r -n1 dirname | sort -u)
if [ ${#dirs[@]} -eq 0 ]; then
	echo "fuzz.sh: no fuzz targets found" >&2
	exit 1
fi

failed=()
count=0
for dir in "${dirs[@]}"; do
	for target in $(go test -list '^Fuzz' "$dir" | grep '^Fuzz' || true); do
		count=$((count + 1))
		echo "fuzz.sh: $dir $target for $FUZZTIME"
		if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$dir"; then
			failed+=("$dir $target")
		fi
	done
done
if [ ${#failed[@]} -gt 0 ]; then
	printf 'fuzz.sh: failed: %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "fuzz.sh: $count targets passed"
