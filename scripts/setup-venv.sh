#!/usr/bin/env bash
# Creates (or updates) the uv-managed virtual environment llama-venv with the
# pinned Python packages. Idempotent: a venv whose stamp matches
# scripts/requirements.txt is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-llama-venv}
req=scripts/requirements.txt
stamp=$venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
	exit 0
fi
if ! command -v uv >/dev/null 2>&1; then
	echo "setup-venv: installing uv from PyPI" >&2
	python3 -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
fi
uv=$(command -v uv || echo "$(python3 -m site --user-base)/bin/uv")
# torch 2.1.0 publishes wheels for CPython 3.8 to 3.11 only.
py=$(command -v python3.11 || command -v python3)
if [[ ! -x $venv/bin/python3 ]]; then
	"$uv" venv --quiet --python "$py" "$venv"
fi
echo "setup-venv: installing $req into $venv (torch 2.1.0 and its CUDA libraries are about 2.5 GB on first install)" >&2
VIRTUAL_ENV=$PWD/$venv "$uv" pip install --quiet -r "$req"
echo "$want" > "$stamp"
