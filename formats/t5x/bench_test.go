package t5x

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"ckptbench/formats"
	"ckptbench/formats/zarr"
	"ckptbench/iox"
	"ckptbench/model"
	"ckptbench/tensor"
)

// benchConfig is OpenLLaMA-3B cut to one layer and half the vocabulary:
// 452 MB in float16, with the 3B model's tensor shapes (the embedding
// and the output head in 2 chunks each, every other tensor in one).
var benchConfig = func() model.Config {
	c := model.OpenLLaMA3B.Config
	c.NumHiddenLayers = 1
	c.VocabSize = 16000
	return c
}()

var benchModel = sync.OnceValue(func() *tensor.StateDict {
	return model.Synthetic(benchConfig, tensor.Float16, model.DefaultSeed)
})

// BenchmarkSave times durable saves of the 452 MB model by the t5x and
// zarr formats with each codec, and by t5x with O_DIRECT on and off. The
// references write the same bytes to one file: with plain sequential
// writes and fsync, and with O_DIRECT and 16 requests in flight, the
// disk's limit. extra-RSS-B is the peak resident memory above what the
// process held before the save. cpu-ns/op is the CPU time of the whole
// process (user and system, all threads) per save, which other load on
// the machine disturbs far less than the wall-clock time.
func BenchmarkSave(b *testing.B) {
	sd := benchModel()
	variants := []struct {
		name string
		save func(path string) error
	}{
		{"format=plain", func(path string) error { return plainWrite(path, sd) }},
		{"format=disk/streams=16", func(path string) error { return directWrite(path, sd, 16) }},
	}
	for _, codec := range []string{"raw", "gzip", "zstd"} {
		z, err := zarr.New(zarr.Options{Codec: codec})
		if err != nil {
			b.Fatal(err)
		}
		variants = append(variants, struct {
			name string
			save func(string) error
		}{"format=zarr/codec=" + codec, func(path string) error { return z.Save(path, sd) }})
		for _, direct := range []bool{false, true} {
			f, err := New(Options{Codec: codec, BufferedWrite: !direct})
			if err != nil {
				b.Fatal(err)
			}
			io := "buffered"
			if direct {
				io = "direct"
			}
			variants = append(variants, struct {
				name string
				save func(string) error
			}{fmt.Sprintf("format=t5x/codec=%s/io=%s", codec, io), func(path string) error { return f.Save(path, sd) }})
		}
		if codec != "raw" {
			// Stores chunks that save less than 10 %: every weight chunk.
			f, _ := New(Options{Codec: codec, MinSavings: 0.1})
			variants = append(variants, struct {
				name string
				save func(string) error
			}{fmt.Sprintf("format=t5x/codec=%s/minsavings=0.1", codec), func(path string) error { return f.Save(path, sd) }})
		}
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			dir := b.TempDir()
			b.SetBytes(sd.NumBytes())
			var extra, cpu int64
			for i := range b.N {
				path := filepath.Join(dir, fmt.Sprintf("checkpoint_%d", i))
				base := resetPeakRSS(b)
				cpuBefore := cpuTime(b)
				b.StartTimer()
				if err := v.save(path); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cpu += cpuTime(b) - cpuBefore
				extra = max(extra, peakRSS(b)-base)
				_, size, err := iox.Usage(path)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(size), "disk-B")
				os.RemoveAll(path)
			}
			b.ReportMetric(float64(extra), "extra-RSS-B")
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkLoad times cold loads: the checkpoint's pages are dropped from
// the page cache before each load, outside the timed region.
func BenchmarkLoad(b *testing.B) {
	sd := benchModel()
	for _, codec := range []string{"raw", "gzip", "zstd"} {
		z, err := zarr.New(zarr.Options{Codec: codec})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("format=zarr/codec=%s/cache=cold", codec), func(b *testing.B) {
			benchLoad(b, z, sd)
		})
		for _, buffered := range []bool{false, true} {
			io := "direct"
			if buffered {
				io = "buffered"
			}
			b.Run(fmt.Sprintf("format=t5x/codec=%s/io=%s/cache=cold", codec, io), func(b *testing.B) {
				f, err := New(Options{Codec: codec, BufferedRead: buffered})
				if err != nil {
					b.Fatal(err)
				}
				benchLoad(b, f, sd)
			})
		}
		b.Run(fmt.Sprintf("format=t5x/codec=%s/io=direct/verify=load/cache=cold", codec), func(b *testing.B) {
			f, err := New(Options{Codec: codec, VerifyOnLoad: true})
			if err != nil {
				b.Fatal(err)
			}
			benchLoad(b, f, sd)
		})
		if codec != "raw" {
			b.Run(fmt.Sprintf("format=t5x/codec=%s/minsavings=0.1/cache=cold", codec), func(b *testing.B) {
				f, _ := New(Options{Codec: codec, MinSavings: 0.1})
				benchLoad(b, f, sd)
			})
		}
	}
	b.Run("format=disk/streams=16/cache=cold", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "disk")
		if err := directWrite(path, sd, 16); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(sd.NumBytes())
		for range b.N {
			if err := iox.DropCache(path); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			err := directRead(path, 16)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("format=plain/cache=cold", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "plain")
		if err := plainWrite(path, sd); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(sd.NumBytes())
		for range b.N {
			if err := iox.DropCache(path); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			buf, err := os.ReadFile(path)
			b.StopTimer()
			if err != nil || int64(len(buf)) != sd.NumBytes() {
				b.Fatalf("read %d bytes: %v", len(buf), err)
			}
		}
	})
}

// benchLoad times cold loads of sd saved by f.
func benchLoad(b *testing.B, f formats.Format, sd *tensor.StateDict) {
	path := filepath.Join(b.TempDir(), "checkpoint_1")
	if err := f.Save(path, sd); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(sd.NumBytes())
	var extra, cpu int64
	for range b.N {
		if err := iox.DropCache(path); err != nil {
			b.Fatal(err)
		}
		base := resetPeakRSS(b)
		cpuBefore := cpuTime(b)
		b.StartTimer()
		got, err := f.Load(path)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime(b) - cpuBefore
		extra = max(extra, peakRSS(b)-base-sd.NumBytes())
		got.Close()
	}
	b.ReportMetric(float64(extra), "extra-RSS-B")
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
}

// plainWrite writes every tensor's bytes to one file with ordinary
// sequential writes, then fsyncs: the simplest durable save.
func plainWrite(path string, sd *tensor.StateDict) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	for _, t := range sd.Tensors {
		if _, err := f.Write(t.Data); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// directWrite writes as many bytes as sd holds, rounded up to a block,
// to one file with O_DIRECT from an aligned buffer, streams requests of
// 4 MiB in flight, then fsyncs: what the disk can take.
func directWrite(path string, sd *tensor.StateDict, streams int) error {
	const request = 4 << 20
	n := alignUp(sd.NumBytes())
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_DIRECT, 0o644)
	if err != nil {
		return err
	}
	defer unix.Close(fd)

	buf, err := unix.Mmap(-1, 0, request, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return err
	}
	defer unix.Munmap(buf)
	copy(buf, sd.Tensors[0].Data)

	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := int64(s) * request; off < n; off += int64(streams) * request {
				if err := pwriteFull(fd, buf[:min(request, n-off)], off); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return unix.Fsync(fd)
}

// directRead reads the file at path into fresh memory with O_DIRECT,
// streams requests of 4 MiB in flight: what the disk can deliver.
func directRead(path string, streams int) error {
	const request = 4 << 20
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}

	var sd tensor.StateDict
	defer sd.Close()
	mem, err := sd.Alloc(st.Size)
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := int64(s) * request; off < st.Size; off += int64(streams) * request {
				n, err := preadFull(fd, mem[off:min(off+request, st.Size)], off)
				if err == nil && int64(n) != min(request, st.Size-off) {
					err = fmt.Errorf("short read at %d", off)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// resetPeakRSS resets the kernel's peak resident size of this process
// (VmHWM) and returns the current resident size.
func resetPeakRSS(b *testing.B) int64 {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatal(err)
	}
	return procStatus(b, "VmRSS:")
}

func peakRSS(b *testing.B) int64 { return procStatus(b, "VmHWM:") }

// cpuTime returns the user and system CPU time the process has used, in
// nanoseconds.
func cpuTime(b *testing.B) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func procStatus(b *testing.B, key string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := bytes.Fields(sc.Bytes()); len(f) == 3 && string(f[0]) == key {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatalf("/proc/self/status has no %s line", key)
	return 0
}
