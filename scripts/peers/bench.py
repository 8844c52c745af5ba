"""The timed save and load loop, with the Go harness's rules.

- Save: the previous output is removed and os.sync() runs outside the
  timed region. The timed region covers the whole durable, atomic save.
- Cold load: every file of the checkpoint is fsynced and its pages dropped
  with posix_fadvise(POSIX_FADV_DONTNEED) outside the timed region.
- Warm load: every file of the checkpoint is read through the page cache
  outside the timed region.
- Before each timed operation, as many bytes of fresh memory as the model
  has are touched and freed (measure.prime_memory), so its allocations
  find memory the kernel holds.
- A load ends when every byte is in memory (see formats).
- peak-RSS-B is the peak resident set size during the operation, measured
  by resetting VmHWM before it and reading it after. It includes the
  interpreter and its libraries, and for saves the state dict being saved.

Each iteration prints one result line, so -count N gives N lines per
benchmark, as `go test -count N` does.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import os
import sys
import time
from importlib import metadata
from typing import Callable, TextIO

from . import durable, gobench, handover, measure
from .formats import Format
from .statedict import PeerError, check_same, checksums, metas, num_bytes

CACHES = ("cold", "warm")
OPS = ("save", "load")


@dataclasses.dataclass
class Options:
    format: Format
    handover: str
    directory: str
    count: int
    model: str
    caches: list[str] = dataclasses.field(default_factory=lambda: list(CACHES))
    ops: list[str] = dataclasses.field(default_factory=lambda: list(OPS))
    # Leave the last checkpoint in the directory instead of removing it.
    keep: bool = False


@dataclasses.dataclass
class Result:
    ns: int
    peak_rss: int


def timed(op: Callable[[], object]) -> tuple[object, Result]:
    """Run op with peak RSS reset before it, and return its value and measurements."""
    gc.collect()
    measure.reset_peak_rss()
    start = time.perf_counter_ns()
    value = op()
    ns = time.perf_counter_ns() - start
    return value, Result(ns, measure.peak_rss_bytes())


def run(opts: Options, out: TextIO = sys.stdout, log: TextIO = sys.stderr) -> None:
    """Run the benchmark and print its configuration and result lines to out.

    Progress goes to log. Raises PeerError on bad options or input.
    """
    _check_options(opts)
    fmt = opts.format
    gomaxprocs = gobench.procs()
    path = os.path.join(opts.directory, fmt.file_name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    durable.remove(path)

    print(f"peers: reading {opts.handover}", file=log, flush=True)
    sd = handover.read_handover(opts.handover)
    want_metas = metas(sd)
    want_sums = checksums(sd)
    nbytes = num_bytes(sd)
    for line in _config():
        print(line, file=out)
    out.flush()

    def emit(base: str, parts: list[tuple[str, str]], result: Result, i: int) -> None:
        files, disk = durable.usage(path)
        name = gobench.benchmark_name(base, parts, gomaxprocs)
        metrics = {"disk-B": disk, "files": files, "peak-RSS-B": result.peak_rss}
        print(gobench.result_line(name, result.ns, nbytes, metrics), file=out, flush=True)
        seconds = result.ns / 1e9
        print(
            f"peers: {name} {i + 1}/{opts.count}: {seconds:.3f} s, "
            f"{nbytes / 1e6 / seconds:.0f} MB/s, peak RSS {result.peak_rss / 1e9:.2f} GB",
            file=log,
            flush=True,
        )

    # Go's benchmark names use the model's name without its Hugging Face
    # owner, so "openlm-research/open_llama_3b" becomes "open_llama_3b".
    model = opts.model.rsplit("/", 1)[-1]
    parts = [("format", fmt.name), ("model", model)]
    saved = False
    if "save" in opts.ops and fmt.bench_saves:
        for i in range(opts.count):
            durable.remove(path)
            os.sync()
            gc.collect()
            measure.prime_memory(nbytes)
            _, result = timed(lambda: fmt.save(path, sd))
            saved = True
            emit("BenchmarkSave", parts, result, i)

    if "load" in opts.ops:
        if not saved:
            print(f"peers: writing {path} for the loads (untimed)", file=log, flush=True)
            fmt.save(path, sd)
        # The loads neither need nor count the source state dict.
        del sd
        for cache in opts.caches:
            emit_load = functools.partial(emit, "BenchmarkLoad", parts + [("cache", cache)])
            _run_loads(opts, path, cache, want_metas, want_sums, nbytes, emit_load)

    if not opts.keep:
        durable.remove(path)


def _run_loads(opts: Options, path: str, cache: str, want_metas, want_sums, nbytes: int, emit) -> None:
    fmt = opts.format
    if cache == "warm":
        check_same(want_metas, None, fmt.load(path), f"{fmt.name} warm-up load of {path}")
    for i in range(opts.count):
        gc.collect()
        # Priming first, as the Go harness does, because it can make the
        # kernel reclaim a few cached pages.
        measure.prime_memory(nbytes)
        if cache == "cold":
            durable.drop_cache(path)
        else:
            durable.fill_cache(path)
        loaded, result = timed(lambda: fmt.load(path))
        # Names, dtypes and shapes are checked after every load, payloads
        # only after the first of each cache mode, because a CRC-32 of a
        # large model takes seconds.
        sums = want_sums if i == 0 else None
        check_same(want_metas, sums, loaded, f"{fmt.name} {cache} load of {path}")
        del loaded
        emit(result, i)


def _check_options(opts: Options) -> None:
    if opts.count < 1:
        raise PeerError(f"--count {opts.count} is invalid: expected 1 or more")
    gobench.check_name_value("model", opts.model.rsplit("/", 1)[-1])
    for cache in opts.caches:
        if cache not in CACHES:
            raise PeerError(f"--cache {cache!r}: expected a comma-separated list of {', '.join(CACHES)}")
    for op in opts.ops:
        if op not in OPS:
            raise PeerError(f"--ops {op!r}: expected a comma-separated list of {', '.join(OPS)}")
    if not os.path.isfile(opts.handover):
        raise PeerError(
            f"handover file {opts.handover} not found. The Go harness writes it before it runs "
            "the peers: go run ./scripts/handover -out FILE"
        )


def _config() -> list[str]:
    """Return the configuration lines that describe this process.

    The model, dtype, device and weights lines come from the Go harness,
    which writes them atop the peers' output, so the peers do not repeat
    them: a second, differently spelled model line would override the
    harness's and make files disagree.
    """
    goos, goarch = gobench.goos_goarch()
    pairs = [
        ("goos", goos),
        ("goarch", goarch),
        ("pkg", "peers"),
        ("cpu", gobench.cpu_name()),
        ("python", sys.version.split()[0]),
    ]
    for package in ("torch", "numpy", "safetensors", "tensorstore", "msgpack"):
        pairs.append((package, metadata.version(package)))
    return [gobench.config_line(k, v) for k, v in pairs]
