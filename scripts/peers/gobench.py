"""Go benchmark format, as `go test -bench` prints it, for benchstat and benchfmt.

A result line is the benchmark name, the iteration count and value-unit
pairs separated by tabs. Numbers use the widths and precisions of Go's
testing package (Go 1.26): ns/op and custom metrics in prettyPrint's
format, MB/s with two decimals, custom metrics sorted by unit. Lines of
the form "key: value" before the results are configuration that applies
to the results after them.
"""

from __future__ import annotations

import os
import platform
import re

from .statedict import PeerError

# A name part may not contain whitespace (it would end the name) or "/"
# (it would start another part).
_PART = re.compile(r"[^\s/]+")

_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x"}


def check_name_value(key: str, value: str) -> None:
    """Raise PeerError unless value can be the value of key in a benchmark name."""
    if not _PART.fullmatch(value):
        raise PeerError(f"{key} {value!r} cannot be part of a benchmark name: use no spaces or '/'")


def procs() -> int:
    """Return the number of CPUs this process may run on, Go's default GOMAXPROCS."""
    return len(os.sched_getaffinity(0))


def benchmark_name(base: str, parts: list[tuple[str, str]], gomaxprocs: int) -> str:
    """Return base/key=value/... with Go's -N suffix, which Go omits when N is 1."""
    name = "/".join([base] + [f"{k}={v}" for k, v in parts])
    if gomaxprocs > 1:
        name += f"-{gomaxprocs}"
    return name


def pretty(value: float, unit: str) -> str:
    """Format value and unit as Go's testing.prettyPrint does: ten places before
    the point, or four significant digits below 1000."""
    y = abs(value)
    if y == 0 or y >= 999.95:
        return f"{value:10.0f} {unit}"
    for bound, width, decimals in (
        (99.995, 12, 1),
        (9.9995, 13, 2),
        (0.99995, 14, 3),
        (0.099995, 15, 4),
        (0.0099995, 16, 5),
        (0.00099995, 17, 6),
    ):
        if y >= bound:
            return f"{value:{width}.{decimals}f} {unit}"
    return f"{value:18.7f} {unit}"


def result_line(name: str, ns_per_op: float, bytes_per_op: int, metrics: dict[str, float]) -> str:
    """Return one result line for a single iteration (N = 1).

    bytes_per_op plays the part of b.SetBytes: MB/s is bytes_per_op per
    second in units of 1e6 bytes, and is omitted when bytes_per_op is 0.
    """
    fields = [name, f"{1:8d}", pretty(ns_per_op, "ns/op")]
    if bytes_per_op and ns_per_op:
        fields.append(f"{bytes_per_op / 1e6 / (ns_per_op / 1e9):7.2f} MB/s")
    for unit in sorted(metrics):
        fields.append(pretty(metrics[unit], unit))
    return "\t".join(fields)


def config_line(key: str, value: str) -> str:
    return f"{key}: {value}"


def goos_goarch() -> tuple[str, str]:
    machine = platform.machine()
    return platform.system().lower(), _GOARCH.get(machine, machine)


def cpu_name() -> str:
    """Return the CPU model as Go's testing prints it on Linux, from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
