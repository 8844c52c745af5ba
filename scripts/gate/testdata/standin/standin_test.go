// Package standin is a small checkpoint benchmark that replaces ./bench
// while recording the gate's test fixtures and measuring the
// run-to-run noise that sets the gate's default threshold. It measures
// the same operations as the real harness, at the tiny model's size:
// a durable save of one file per tensor, a cold load after the pages
// were evicted, and a warm load.
//
// The go tool skips testdata directories in ./... patterns, so this runs
// only when named: go test ./scripts/gate/testdata/standin -run '^$' -bench .
// scripts/gate/testdata/record.sh shows how the fixtures were made.
//
// STANDIN_SLOWDOWN=0.3 makes every timed operation 30% slower (it waits
// for that fraction of the operation's own duration inside the timed
// region), so a recorded slowdown is a measured one, not edited numbers.
package standin

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"ckptbench/iox"
	"ckptbench/model"
	"ckptbench/tensor"
)

func TestMain(m *testing.M) {
	// Configuration lines in the form the real harness prints, so the
	// recorded files look like real results to the report and the gate.
	fmt.Println("weights: synthetic (seed 1)")
	fmt.Println("model: tiny_llama")
	fmt.Println("dtype: float16")
	fmt.Println("sync: fsync of every file and the directory inside the timed region")
	os.Exit(m.Run())
}

// slowdown returns the fraction of extra time each timed operation takes.
func slowdown(b *testing.B) float64 {
	s := os.Getenv("STANDIN_SLOWDOWN")
	if s == "" {
		return 0
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		b.Fatalf("STANDIN_SLOWDOWN=%q: want a non-negative fraction such as 0.3", s)
	}
	return f
}

// timed runs op and then, when a slowdown is set, waits for that
// fraction of op's duration, all inside the caller's timed region. It
// spins rather than sleeps: a warm load takes about 0.2 ms, less than
// the timer slack of a sleep on a busy machine.
func timed(frac float64, op func() error) error {
	start := time.Now()
	err := op()
	if frac > 0 {
		deadline := time.Now().Add(time.Duration(frac * float64(time.Since(start))))
		for time.Now().Before(deadline) {
		}
	}
	return err
}

func BenchmarkSave(b *testing.B) {
	sd := model.Synthetic(model.Tiny.Config, tensor.Float16, model.DefaultSeed)
	frac := slowdown(b)
	b.Run("format=standin/model=tiny_llama", func(b *testing.B) {
		dst := filepath.Join(b.TempDir(), "ckpt")
		b.SetBytes(sd.NumBytes())
		var peak int64
		for b.Loop() {
			b.StopTimer()
			if err := os.RemoveAll(dst); err != nil {
				b.Fatal(err)
			}
			resetPeakRSS(b)
			b.StartTimer()
			if err := timed(frac, func() error { return save(dst, sd) }); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			peak = max(peak, peakRSS(b))
			b.StartTimer()
		}
		reportUsage(b, dst, peak)
	})
}

func BenchmarkLoad(b *testing.B) {
	sd := model.Synthetic(model.Tiny.Config, tensor.Float16, model.DefaultSeed)
	frac := slowdown(b)
	dst := filepath.Join(b.TempDir(), "ckpt")
	if err := save(dst, sd); err != nil {
		b.Fatal(err)
	}
	for _, cache := range []string{"cold", "warm"} {
		b.Run("format=standin/model=tiny_llama/cache="+cache, func(b *testing.B) {
			b.SetBytes(sd.NumBytes())
			if _, err := load(dst, sd); err != nil {
				b.Fatal(err)
			}
			var peak int64
			for b.Loop() {
				b.StopTimer()
				if cache == "cold" {
					if err := iox.DropCache(dst); err != nil {
						b.Fatal(err)
					}
				}
				resetPeakRSS(b)
				b.StartTimer()
				var n int64
				err := timed(frac, func() error {
					var err error
					n, err = load(dst, sd)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if n != sd.NumBytes() {
					b.Fatalf("loaded %d bytes from %s, want %d", n, dst, sd.NumBytes())
				}
				peak = max(peak, peakRSS(b))
				b.StartTimer()
			}
			reportUsage(b, dst, peak)
		})
	}
}

// save writes one file per tensor under a temporary name, fsyncs the
// files and the directory, and publishes the directory atomically.
func save(dst string, sd *tensor.StateDict) error {
	tmp := iox.TempPath(dst)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	for i, t := range sd.Tensors {
		f, err := os.Create(filepath.Join(tmp, fmt.Sprintf("%04d.bin", i)))
		if err != nil {
			return err
		}
		_, err = f.Write(t.Data)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if err := iox.SyncDir(tmp); err != nil {
		return err
	}
	return iox.Commit(tmp, dst)
}

// load reads every tensor file into fresh memory and returns the number
// of bytes read.
func load(dir string, sd *tensor.StateDict) (int64, error) {
	var n int64
	for i, t := range sd.Tensors {
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%04d.bin", i)))
		if err != nil {
			return n, err
		}
		if len(data) != len(t.Data) {
			return n, fmt.Errorf("%s: read %d bytes of %s, want %d", dir, len(data), t.Name, len(t.Data))
		}
		n += int64(len(data))
	}
	return n, nil
}

func reportUsage(b *testing.B, dir string, peak int64) {
	files, size, err := iox.Usage(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(size), "disk-B")
	b.ReportMetric(float64(files), "files")
	b.ReportMetric(float64(peak), "peak-RSS-B")
}

// resetPeakRSS resets the kernel's peak resident set size of this
// process (VmHWM) to the current size; it needs Linux 4.0 or later.
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatal(err)
	}
}

// peakRSS returns VmHWM from /proc/self/status in bytes.
func peakRSS(b *testing.B) int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		kb, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmHWM:"))
		if !ok {
			continue
		}
		v, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(kb), []byte(" kB"))), 10, 64)
		if err != nil {
			b.Fatalf("/proc/self/status: invalid VmHWM line %q: %v", sc.Text(), err)
		}
		return v << 10
	}
	b.Fatal("/proc/self/status has no VmHWM line")
	return 0
}
