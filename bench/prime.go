package bench

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// primeSlack is the free memory PrimeMemory leaves untouched, so that
// priming seldom makes the kernel reclaim page cache, such as the
// checkpoint a warm load is about to read.
const primeSlack = 256 << 20

// PageReportingPath is the file of Linux's free page reporting counters.
// It exists on virtual machines whose balloon device hands free guest
// memory back to the host.
const PageReportingPath = "/sys/module/page_reporting/parameters/reported_kib"

// PrimeMemory touches up to n bytes of fresh anonymous memory and unmaps
// it again, and returns how many bytes it touched. The harness calls it
// just before each timed operation so that the operation's allocations
// start from the same state in every format and every iteration: memory
// that the guest kernel has and has recently used.
//
// It matters on virtual machines with free page reporting (virtio
// balloon): a few seconds after memory is freed the guest reports it to
// the host, which discards it, and touching it again costs a fault on the
// host as well. On the 2-core development VM, touching 6 GiB took 0.6 s
// right after a free and 5.5 to 15 s once the memory had been reported.
// A load that allocated its tensors therefore took 0.6 s or 6 s,
// depending on how long ago the previous iteration freed its copy. On machines without
// reporting, priming costs a pass over memory outside the timed region
// and changes nothing inside it.
//
// It touches at most the free memory less 256 MiB, so that it evicts few
// cached pages, if any. Callers set the page cache's state afterwards.
func PrimeMemory(n int64) (int64, error) {
	free, err := memFree()
	if err != nil {
		return 0, err
	}
	if n = primeSize(n, free); n == 0 {
		return 0, nil
	}
	mem, err := unix.Mmap(-1, 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return 0, fmt.Errorf("prime %d bytes of memory: %w", n, err)
	}
	// Huge pages, as in tensor.StateDict.Alloc, so the freed memory
	// returns to the kernel in the same 2 MiB blocks the loads take.
	_ = unix.Madvise(mem, unix.MADV_HUGEPAGE)
	page := os.Getpagesize()
	for i := 0; i < len(mem); i += page {
		mem[i] = 1
	}
	if err := unix.Munmap(mem); err != nil {
		return 0, fmt.Errorf("prime memory: unmap: %w", err)
	}
	return n, nil
}

// primeSize returns how many of n bytes PrimeMemory touches with free
// bytes of free memory: all n, or the free memory less primeSlack.
func primeSize(n, free int64) int64 {
	return max(0, min(n, free-primeSlack))
}

// memFree returns MemFree from /proc/meminfo in bytes: memory that no
// page, cached or not, occupies.
func memFree() (int64, error) { return kBField("/proc/meminfo", "MemFree:") }

// pageReporting returns whether the kernel reports free memory to a
// hypervisor, for the results' config lines.
func pageReporting() string {
	if _, err := os.Stat(PageReportingPath); err == nil {
		return "on (free memory goes back to the host a few seconds after it is freed)"
	}
	return "off"
}
