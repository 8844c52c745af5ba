package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"ckptbench/device"
	"ckptbench/formats/t5x"
	"ckptbench/iox"
)

// CheckpointPath returns where variant v's checkpoint lives in s.Dir.
// T5X names its checkpoint directories checkpoint_<step>.
func (s *Setup) CheckpointPath(v Variant) string {
	return filepath.Join(s.Dir, strings.ReplaceAll(v.ID, "/", "-"), "checkpoint_1000")
}

// Name returns the sub-benchmark name for v, followed by extra key=value
// parts: format=zarr/codec=gzip/model=open_llama_3b/cache=cold.
func (s *Setup) Name(v Variant, extra ...string) string {
	return strings.Join(append([]string{v.Keys, "model=" + s.Spec.Name}, extra...), "/")
}

// RunSave times b.N durable saves of the model with v, each into a
// location emptied beforehand, and reports the checkpoint's size on disk,
// its file count and the peak resident memory of the saves.
//
// NOTE: the model is saved from host memory on every device. On a GPU
// machine the device-to-host copy that a training job pays before a save
// is not part of the timed region.
func (s *Setup) RunSave(b *testing.B, v Variant) {
	b.StopTimer()
	sd, err := s.Model()
	if err != nil {
		b.Fatal(err)
	}
	path := s.CheckpointPath(v)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(sd.NumBytes())
	var peak int64
	for i := 0; i < b.N; i++ {
		if err := os.RemoveAll(path); err != nil {
			b.Fatal(err)
		}
		unix.Sync()
		FreeMemory()
		if _, err := PrimeMemory(sd.NumBytes()); err != nil {
			b.Fatal(err)
		}
		if err := ResetPeakRSS(); err != nil {
			b.Fatal(err)
		}
		progress("save %s: %d/%d", v.ID, i+1, b.N)
		start := time.Now()
		b.StartTimer()
		// The label lets scripts/profile.sh keep only timed samples; the
		// goroutines Save starts inherit it.
		pprof.Do(context.Background(), pprof.Labels("timed", "save"), func(context.Context) {
			err = v.Save(path, sd)
		})
		b.StopTimer()
		progressDone(start)
		if err != nil {
			b.Fatalf("save %s: %v", v.ID, err)
		}
		if p, err := PeakRSS(); err == nil {
			peak = max(peak, p)
		}
	}
	files, size, err := iox.Usage(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(size), "disk-B")
	b.ReportMetric(float64(files), "files")
	b.ReportMetric(float64(peak), "peak-RSS-B")
}

// Cache states of a load benchmark.
const (
	Cold = "cold"
	Warm = "warm"
)

// RunLoad times b.N loads of v's checkpoint with the page cache cold or
// warm. The checkpoint is the last one RunSave wrote, or is saved once,
// untimed, when there is none. The model's weights are then released so
// they do not share memory with the loaded copy. A first, untimed load
// from the same cache state is verified against the model's checksums.
func (s *Setup) RunLoad(b *testing.B, v Variant, cache string) {
	b.StopTimer()
	path := s.CheckpointPath(v)
	if _, err := os.Stat(path); err != nil || s.bytes == 0 {
		sd, err := s.Model()
		if err != nil {
			b.Fatal(err)
		}
		progress("prepare %s: untimed save", v.ID)
		start := time.Now()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			b.Fatal(err)
		}
		os.RemoveAll(path)
		if err := v.Save(path, sd); err != nil {
			b.Fatalf("save %s: %v", v.ID, err)
		}
		progressDone(start)
	}
	s.Release()
	b.SetBytes(s.bytes)
	lv := v
	if d, ok := v.Format.(Disk); ok && cache == Warm {
		d.Buffered = true
		lv.Format = d
	}
	// An untimed load verifies the checkpoint. It starts from the same
	// cache state as the timed loads, so it checks the same code path: a
	// format may read cached and uncached files differently, as t5x maps
	// cached chunk files.
	if _, err := setCache(path, cache, 0); err != nil {
		b.Fatal(err)
	}
	sd, err := lv.Load(path)
	if err != nil {
		b.Fatalf("load %s: %v", v.ID, err)
	}
	if !v.Reference {
		if err := s.Verify(sd); err != nil {
			b.Fatalf("load %s from %s: %v", v.ID, path, err)
		}
	} else if got := sd.NumBytes(); got < s.bytes {
		b.Fatalf("disk reference read %d bytes, want %d", got, s.bytes)
	}
	var peak int64
	stale := int64(-1) // stays -1 where the kernel cannot count cached pages
	dev := device.Current()
	for i := 0; i < b.N; i++ {
		sd.Close()
		sd = nil
		FreeMemory()
		n, err := setCache(path, cache, s.bytes)
		if err != nil {
			b.Fatal(err)
		}
		stale = max(stale, n)
		if err := ResetPeakRSS(); err != nil {
			b.Fatal(err)
		}
		progress("load %s (%s cache): %d/%d", v.ID, cache, i+1, b.N)
		start := time.Now()
		b.StartTimer()
		pprof.Do(context.Background(), pprof.Labels("timed", "load-"+cache), func(context.Context) {
			sd, err = lv.Load(path)
			if err == nil && dev.IsCUDA() && !v.Reference {
				// On a GPU machine a load ends when every byte is on the GPU.
				var p *device.Placement
				if p, err = device.Place(dev, sd); err == nil {
					err = p.Release()
				}
			}
		})
		b.StopTimer()
		progressDone(start)
		if err != nil {
			b.Fatalf("load %s: %v", v.ID, err)
		}
		if p, err := PeakRSS(); err == nil {
			peak = max(peak, p)
		}
	}
	sd.Close()
	FreeMemory()
	b.ReportMetric(float64(peak), "peak-RSS-B")
	if stale >= 0 {
		b.ReportMetric(float64(stale), "off-state-B")
	}
}

// setCache primes prime bytes of memory (see PrimeMemory) and then puts
// the checkpoint at path in the page-cache state that cache names: no
// page cached (Cold) or every page cached (Warm). Priming comes first
// because it can make the kernel reclaim a few cached pages. It returns
// the bytes that cachestat still finds in the other state, or -1 where
// the kernel has no cachestat. Above 1 % of the checkpoint it prints a
// warning, because the load that follows is then not entirely cold or
// warm.
func setCache(path, cache string, prime int64) (int64, error) {
	if _, err := PrimeMemory(prime); err != nil {
		return 0, err
	}
	set := iox.DropCache
	if cache == Warm {
		set = iox.FillCache
	}
	if err := set(path); err != nil {
		return 0, err
	}
	cached, total, err := iox.CachedBytes(path)
	if errors.Is(err, unix.ENOSYS) {
		return -1, nil
	}
	if err != nil {
		return 0, err
	}
	off, state := cached, "evicted"
	if cache == Warm {
		off, state = total-cached, "cached"
	}
	if off*100 > total {
		fmt.Fprintf(os.Stderr, "bench: warning: %s load of %s: %d of its %d bytes are not %s\n",
			cache, path, off, total, state)
	}
	return off, nil
}

// progress prints what the benchmark is doing to standard error, so long
// runs show where they are; benchmark results go to standard output.
func progress(format string, args ...any) {
	if os.Getenv("BENCH_QUIET") == "" {
		fmt.Fprintf(os.Stderr, "  "+format+" ...", args...)
	}
}

func progressDone(start time.Time) {
	if os.Getenv("BENCH_QUIET") == "" {
		fmt.Fprintf(os.Stderr, " %.2fs\n", time.Since(start).Seconds())
	}
}

// Describe returns the config lines that head a results file, in Go
// benchmark format (key: value), naming the weights, the model and the
// method, so every result states what it measured.
func (s *Setup) Describe(device string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "weights: %s\n", s.Weights)
	repo := s.Spec.Repo
	if repo == "" {
		repo = s.Spec.Name
	}
	fmt.Fprintf(&b, "model: %s\n", repo)
	fmt.Fprintf(&b, "dtype: %s\n", s.DType)
	tensorBytes := s.bytes // real weights, read in NewSetup
	if tensorBytes == 0 {
		tensorBytes = s.Config.NumBytes(s.DType)
	}
	fmt.Fprintf(&b, "tensor-bytes: %d\n", tensorBytes)
	fmt.Fprintf(&b, "device: %s\n", device)
	fmt.Fprintf(&b, "sync: saves fsync every file and directory inside the timed region\n")
	fmt.Fprintf(&b, "cache: cold loads follow fsync and posix_fadvise(DONTNEED) of every checkpoint file; warm loads follow a read of every checkpoint file through the page cache; off-state-B counts the bytes cachestat found in the other state\n")
	fmt.Fprintf(&b, "memory: before each timed save or load the harness touches and frees as many bytes of fresh memory as the model has (or the free memory less 256 MiB), so allocations inside the timed region find memory the kernel holds\n")
	fmt.Fprintf(&b, "page-reporting: %s\n", pageReporting())
	if mem, err := memTotal(); err == nil {
		fmt.Fprintf(&b, "mem-total: %d\n", mem)
	}
	fmt.Fprintf(&b, "scratch: %s\n", s.Dir)
	fmt.Fprintf(&b, "t5x-byte-budget: %d\n", t5x.DefaultByteBudget)
	fmt.Fprintf(&b, "t5x-io-concurrency: %d\n", t5x.DefaultIOConcurrency)
	return b.String()
}

func memTotal() (int64, error) {
	var info unix.Sysinfo_t
	if err := unix.Sysinfo(&info); err != nil {
		return 0, err
	}
	return int64(info.Totalram) * int64(info.Unit), nil
}

func mkdirParent(path string) error { return os.MkdirAll(filepath.Dir(path), 0o755) }
