"""Run the Python peers of the Go checkpoint formats.

    llama-venv/bin/python scripts/peers.py bench --format py-torch \\
        --handover model.safetensors --dir scratch/peers --count 5 \\
        --model open_llama_3b [--cache cold,warm] [--ops save,load]
    llama-venv/bin/python scripts/peers.py save --format py-t5x \\
        --handover in.safetensors --out ckpt
    llama-venv/bin/python scripts/peers.py load --format py-t5x \\
        --in ckpt --out out.safetensors

Formats: py-torch, py-torch-mmap (load only in bench), py-safetensors,
py-tensorstore, py-t5x. The code lives in the peers package next to this
file. Python imports that package, not this script, because a directory
with __init__.py comes before a module of the same name on the path.
"""

import sys

from peers.cli import main

if __name__ == "__main__":
    sys.exit(main())
