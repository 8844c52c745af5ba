"""Peak resident memory, page touching and memory priming for the timed operations."""

from __future__ import annotations

import mmap

import numpy as np

import torch

from .statedict import PeerError, StateDict

PAGE_SIZE = mmap.PAGESIZE

# The free memory prime_memory leaves untouched, as the Go harness does.
PRIME_SLACK = 256 << 20


def reset_peak_rss() -> None:
    """Reset the kernel's peak resident set size (VmHWM) of this process to its current RSS.

    Writing 5 to /proc/self/clear_refs does this on Linux 4.0 and later.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError as e:
        raise PeerError(
            f"failed to reset the peak RSS through /proc/self/clear_refs ({e.strerror}). "
            "peak-RSS-B needs Linux 4.0 or later and a writable /proc."
        ) from e


def _kb_field(path: str, key: str, purpose: str) -> int:
    """Return the value of the "key:  N kB" line of a /proc file such as /proc/meminfo, in bytes."""
    with open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise PeerError(f"{path} has no {key} line, so {purpose}")


def peak_rss_bytes() -> int:
    """Return VmHWM, the peak resident set size since the last reset, in bytes."""
    return _kb_field("/proc/self/status", "VmHWM", "peak-RSS-B cannot be measured")


def touch_pages(sd: StateDict) -> int:
    """Read one byte of every page of every tensor's storage, and return their sum.

    A memory-mapped load has read nothing until its pages are touched, so
    the mmap peers call this inside the timed region. Storages, not
    tensors, are touched, so strided tensors are covered and a storage
    that several tensors share is read once. The sampled bytes are one page
    apart from the storage's first byte, and its last byte covers the page
    where it ends.
    """
    total = 0
    seen = set()
    for t in sd.values():
        storage = t.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if storage.nbytes() == 0 or key in seen:
            continue
        seen.add(key)
        flat = torch.empty(0, dtype=torch.uint8).set_(storage)
        total += int(flat[::PAGE_SIZE].sum()) + int(flat[-1])
    return total


def mem_free_bytes() -> int:
    """Return MemFree from /proc/meminfo in bytes."""
    return _kb_field("/proc/meminfo", "MemFree", "memory cannot be primed")


def prime_memory(n: int) -> int:
    """Touch up to n bytes of fresh anonymous memory, free it, and return the bytes touched.

    The Go harness's PrimeMemory does the same before each timed
    operation. On virtual machines with free page reporting, memory freed
    a few seconds earlier has gone back to the host and costs a host fault
    to touch again. Without priming, a load's time then depends on how
    long ago the previous one freed its copy. At most the free memory less 256 MiB
    is touched, so that few cached pages, if any, are evicted. Callers
    set the page cache's state afterwards.
    """
    n = min(int(n), mem_free_bytes() - PRIME_SLACK)
    if n <= 0:
        return 0
    region = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        if hasattr(mmap, "MADV_HUGEPAGE"):
            region.madvise(mmap.MADV_HUGEPAGE)
        pages = np.frombuffer(region, dtype=np.uint8)
        pages[::PAGE_SIZE] = 1
        del pages
    finally:
        region.close()
    return n
