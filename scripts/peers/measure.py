"""Peak resident memory and page touching for the timed operations."""

from __future__ import annotations

import mmap

import torch

from .statedict import PeerError, StateDict

PAGE_SIZE = mmap.PAGESIZE


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


def peak_rss_bytes() -> int:
    """Return VmHWM, the peak resident set size since the last reset, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                # The line reads "VmHWM:   123456 kB".
                return int(line.split()[1]) * 1024
    raise PeerError("/proc/self/status has no VmHWM line, so peak-RSS-B cannot be measured")


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
