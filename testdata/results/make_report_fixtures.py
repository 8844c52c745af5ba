"""Writes the report's test fixtures: two result sets in the shape the
bench harness writes (results/<run>/<format>.txt, Go benchmark format).

The figures are NOT measurements. They are chosen by hand to be
plausible for OpenLLaMA-3B (6,852,947,200 tensor bytes in float16) on a
2-core virtual machine whose disk does about 1.8 GB/s O_DIRECT writes
(3 GB/s with 16 in flight) and 1.4 GB/s reads (2.2 GB/s), with seeded
jitter so medians and confidence intervals have something to work on.

report-synthetic/ is a partial run on synthetic weights: py-t5x and
t5x/zstd are missing on purpose. report-real/ holds the compressing
formats on real weights (`weights: pretrained, from ...`), for the -real section.

Usage: python3 testdata/results/make_report_fixtures.py
"""

import os
import random

TENSOR_BYTES = 6852947200
COUNT = 6
HERE = os.path.dirname(os.path.abspath(__file__))

# The configuration lines bench.Setup.Describe and the testing package
# print.
GO_HEADER = """weights: {weights}
model: openlm-research/open_llama_3b
dtype: float16
tensor-bytes: 6852947200
device: cpu
sync: saves fsync every file and directory inside the timed region
cache: cold loads follow fsync and posix_fadvise(DONTNEED) of every checkpoint file; warm loads follow an untimed load
mem-total: 25210363904
scratch: /work/main/scratch
goos: linux
goarch: amd64
pkg: ckptbench/bench
cpu: Intel(R) Xeon(R) Processor
"""

PY_HEADER = """pkg: peers
python: 3.11.7
torch: 2.1.0
tensorstore: 0.1.69
safetensors: 0.4.5
"""

# variant: (save GB/s, cold GB/s, warm GB/s, compression ratio, files,
#           save peak RSS, load peak RSS as multiples of tensor bytes)
GO = {
    "disk/streams=1": (1.80, 1.40, 15.0, 1.0, 1, 1.00, 2.00),
    "disk/streams=16": (3.00, 2.20, None, 1.0, 1, 1.00, 2.00),
    "torchsave": (0.45, 0.50, 3.00, 1.0, 239, 1.02, 2.01),
    "safetensors": (1.05, 1.30, 9.50, 1.0, 1, 1.00, 2.00),
    "zarr/codec=raw": (1.20, 1.25, 6.00, 1.0, 237, 1.01, 2.01),
    "zarr/codec=gzip": (0.09, 0.42, 0.48, 1.12, 237, 1.05, 2.03),
    "zarr/codec=zstd": (0.52, 0.95, 1.30, 1.10, 237, 1.04, 2.02),
    "t5x/codec=raw": (1.60, 1.35, 6.50, 1.0, 241, 1.01, 2.01),
    "t5x/codec=gzip": (0.11, 0.45, 0.50, 1.12, 241, 1.06, 2.03),
}
PEERS = {
    "py-torch": (0.40, 0.45, 2.50, 1.0, 1, 1.05, 2.05),
    "py-torch-mmap": (None, 0.52, 4.00, 1.0, 1, None, 2.02),
    "py-safetensors": (0.42, 0.55, 5.00, 1.0, 1, 1.03, 2.03),
    "py-tensorstore": (0.35, 0.60, 1.50, 1.04, 474, 1.10, 2.10),
}
# Real weights compress a little better than the synthetic ones.
REAL = {
    "zarr/codec=raw": (1.18, 1.22, 6.10, 1.0, 237, 1.01, 2.01),
    "zarr/codec=gzip": (0.10, 0.43, 0.47, 1.16, 237, 1.05, 2.03),
    "zarr/codec=zstd": (0.51, 0.93, 1.28, 1.15, 237, 1.04, 2.02),
    "t5x/codec=gzip": (0.12, 0.46, 0.49, 1.16, 241, 1.06, 2.03),
    "t5x/codec=zstd": (0.60, 0.99, 1.35, 1.15, 241, 1.04, 2.02),
}


def name(op, variant, cache=None):
    fmt, _, rest = variant.partition("/")
    parts = [f"format={fmt}"]
    if rest:
        parts.append(rest)
    parts.append("model=open_llama_3b")
    if cache:
        parts.append(f"cache={cache}")
    return f"Benchmark{op}/" + "/".join(parts) + "-2"


def pretty(x, unit):
    """Formats a reported metric the way Go's testing package does."""
    y = abs(x)
    if y == 0 or y >= 999.95:
        return f"{x:10.0f} {unit}"
    if y >= 99.995:
        return f"{x:12.1f} {unit}"
    if y >= 9.9995:
        return f"{x:13.2f} {unit}"
    return f"{x:14.3f} {unit}"


def line(rng, op, variant, cache, gbps, ratio, files, rss):
    lines = []
    for _ in range(COUNT):
        seconds = TENSOR_BYTES / (gbps * 1e9) * rng.uniform(0.96, 1.06)
        mbps = TENSOR_BYTES / seconds / 1e6
        disk = round(TENSOR_BYTES / ratio) + (rng.randrange(4096) if ratio != 1.0 else 0)
        peak = TENSOR_BYTES * rss * rng.uniform(0.995, 1.005)
        lines.append(
            f"{name(op, variant, cache)} \t       1\t{seconds * 1e9:12.0f} ns/op\t{mbps:8.2f} MB/s"
            f"\t{pretty(disk, 'disk-B')}\t{pretty(files, 'files')}\t{pretty(peak, 'peak-RSS-B')}")
    return lines


def write_set(directory, weights, go, peers, seed):
    rng = random.Random(seed)
    os.makedirs(directory, exist_ok=True)
    for variants, header in ((go, GO_HEADER), (peers, PY_HEADER)):
        for variant, (save, cold, warm, ratio, files, srss, lrss) in variants.items():
            out = [GO_HEADER.format(weights=weights).rstrip("\n")]
            if header is PY_HEADER:
                out.append(PY_HEADER.rstrip("\n"))
            if save:
                out += line(rng, "Save", variant, None, save, ratio, files, srss)
            out += line(rng, "Load", variant, "cold", cold, ratio, files, lrss)
            if warm:
                out += line(rng, "Load", variant, "warm", warm, ratio, files, lrss)
            out.append("PASS")
            fname = variant.replace("/codec=", "-").replace("/", "-") + ".txt"
            with open(os.path.join(directory, fname), "w") as f:
                f.write("\n".join(out) + "\n")


write_set(os.path.join(HERE, "report-synthetic"),
          "synthetic (seed 1; deterministic, shaped like trained weights)", GO, PEERS, 1)
write_set(os.path.join(HERE, "report-real"), "pretrained, from /work/main/models/open_llama_3b", REAL, {}, 2)
