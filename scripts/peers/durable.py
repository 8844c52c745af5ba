"""Durable, atomic saves and page-cache control, with the Go suite's semantics.

A save writes under a temporary sibling of its destination, fsyncs every
file and directory it wrote, then publishes the result with one rename.
Temporary names match the Go suite's (the destination's name, ".tmp-",
the process id and a timestamp), so either side recognizes leftovers.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import time
from typing import Iterator

# From <fcntl.h> and <linux/fs.h>.
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2

_libc = ctypes.CDLL(None, use_errno=True)


def temp_path(dst: str) -> str:
    """Return an unused sibling path of dst for a save to write under."""
    dst = os.path.normpath(dst)
    stamp = _base36(time.time_ns())
    return f"{dst}.tmp-{os.getpid()}-{stamp}"


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def sync_tree(path: str) -> None:
    """fsync path, a file or a directory tree, with every directory after its entries."""
    if not os.path.isdir(path):
        _fsync(path)
        return
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            p = os.path.join(root, name)
            if os.path.isfile(p) and not os.path.islink(p):
                _fsync(p)
        _fsync(root)


def _fsync(path: str) -> None:
    # fsync through a read-only descriptor flushes the file's dirty pages
    # on Linux just as a writable one does.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_dir(path: str) -> None:
    _fsync(path)


def commit(tmp: str, dst: str) -> None:
    """Make the finished, synced checkpoint at tmp visible at dst in one step.

    When dst exists, renameat2(RENAME_EXCHANGE) swaps the two, so dst
    names the complete old or the complete new checkpoint at every
    instant, and the old one is removed afterwards. Where the file system
    lacks the exchange, a file is replaced with os.replace (atomic by
    POSIX) and a directory by moving the old one aside first. That leaves
    a short window without dst, but the old checkpoint survives under a
    ".old-" name until the new one is in place.
    """
    parent = os.path.dirname(os.path.abspath(dst))
    if not os.path.lexists(dst):
        os.rename(tmp, dst)
        sync_dir(parent)
        return
    try:
        _exchange(tmp, dst)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    else:
        # tmp now names the old checkpoint.
        sync_dir(parent)
        remove(tmp)
        sync_dir(parent)
        return
    if not os.path.isdir(tmp):
        os.replace(tmp, dst)
        sync_dir(parent)
        return
    old = f"{dst}.old-{_base36(time.time_ns())}"
    os.rename(dst, old)
    try:
        os.rename(tmp, dst)
    except OSError:
        os.rename(old, dst)
        raise
    sync_dir(parent)
    remove(old)


def _exchange(a: str, b: str) -> None:
    renameat2 = getattr(_libc, "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not in this C library", a)
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), a, None, b)


@contextlib.contextmanager
def atomic_save(dst: str) -> Iterator[str]:
    """Yield a temporary path to write a checkpoint under, then sync and publish it at dst.

    The body writes a file or a directory at the yielded path. On success
    the whole tree is fsynced and committed to dst. If the body, the sync
    or the commit raises, the temporary path is removed and whatever was at
    dst before stays untouched.
    """
    tmp = temp_path(dst)
    try:
        yield tmp
        sync_tree(tmp)
        commit(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            remove(tmp)
        raise


def remove(path: str) -> None:
    """Remove a file or a directory tree. A missing path is not an error."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def regular_files(path: str) -> Iterator[str]:
    """Yield path itself if it is a regular file, or every regular file below it."""
    if not os.path.isdir(path):
        if os.path.isfile(path) and not os.path.islink(path):
            yield path
        return
    for root, _, files in os.walk(path):
        for name in sorted(files):
            p = os.path.join(root, name)
            if os.path.isfile(p) and not os.path.islink(p):
                yield p


def drop_cache(path: str) -> None:
    """Evict the pages of every regular file under path from the page cache.

    Each file is fsynced first, because the kernel keeps dirty pages
    whatever the advice. Pages that a live memory map still uses stay
    resident, so callers release loaded tensors first.
    """
    for p in regular_files(path):
        try:
            fd = os.open(p, os.O_RDWR)
        except PermissionError:
            fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def fill_cache(path: str) -> None:
    """Read every regular file under path through the page cache.

    This sets the state a warm load assumes, whatever the loader's own
    I/O: every page of the checkpoint is cached, as after a recent write
    or read by another process.
    """
    for p in regular_files(path):
        with open(p, "rb", buffering=0) as f:
            while f.read(1 << 20):
                pass


def usage(path: str) -> tuple[int, int]:
    """Return the number of regular files under path and the sum of their apparent sizes."""
    files = 0
    size = 0
    for p in regular_files(path):
        files += 1
        size += os.path.getsize(p)
    return files, size
