package t5x

import (
	"bufio"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"ckptbench/iox"
	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

// mappedFile returns the file that the mapping holding b's first byte
// maps, from /proc/self/maps, or "" for anonymous memory.
func mappedFile(t *testing.T, b []byte) string {
	t.Helper()
	if len(b) == 0 {
		return ""
	}
	addr := uint64(uintptr(unsafe.Pointer(&b[0])))
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		lo, hi, _ := strings.Cut(fields[0], "-")
		start, _ := strconv.ParseUint(lo, 16, 64)
		end, _ := strconv.ParseUint(hi, 16, 64)
		if start <= addr && addr < end {
			if len(fields) >= 6 && strings.HasPrefix(fields[5], "/") {
				return fields[5]
			}
			return ""
		}
	}
	t.Fatalf("address %#x is in no mapping of /proc/self/maps", addr)
	return ""
}

// mappedTensors returns, for each tensor of sd, the chunk file its
// memory maps, relative to dir, or "" where it has its own memory.
func mappedTensors(t *testing.T, sd *tensor.StateDict, dir string) map[string]string {
	t.Helper()
	got := make(map[string]string)
	for _, x := range sd.Tensors {
		file := mappedFile(t, x.Data)
		if file != "" {
			rel, err := filepath.Rel(dir, file)
			if err != nil {
				t.Fatal(err)
			}
			file = filepath.ToSlash(rel)
		}
		got[x.Name] = file
	}
	return got
}

// mapStateDict has one tensor of each kind that decides whether a cached
// load can map it, for 64 KiB chunks.
func mapStateDict() *tensor.StateDict {
	rng := rand.New(rand.NewPCG(5, 6))
	random := func(name string, dtype tensor.DType, shape ...int64) *tensor.Tensor {
		return randomTensor(rng, name, dtype, shape...)
	}
	sd := &tensor.StateDict{}
	sd.Add(
		// Four chunks of [512, 64] rows, 64 KiB each: mapped.
		random("rows", tensor.Float16, 2048, 64),
		// One chunk of 182 bytes: mapped.
		random("single", tensor.Float16, 7, 13),
		// Column chunks, not contiguous in the tensor: read.
		random("columns", tensor.Float16, 64, 2048),
		// Row chunks of 33,792 bytes, not whole pages: read.
		random("odd", tensor.Float16, 2048, 33),
		random("scalar", tensor.Float32),
		random("empty", tensor.Float16, 0, 3),
	)
	return sd
}

// wantMapped is which tensors of mapStateDict a cached load maps, and
// from which file for the first byte.
var wantMapped = map[string]string{
	"rows":    "rows/0.0",
	"single":  "single/0.0",
	"columns": "",
	"odd":     "",
	"scalar":  "scalar/0",
	"empty":   "",
}

// savedCached saves mapStateDict as raw 64 KiB chunks, puts every chunk
// file in the page cache, and returns the format, the checkpoint and the
// saved state dict. It skips the test where the kernel has no cachestat,
// because Load then never maps.
func savedCached(t *testing.T) (*Format, string, *tensor.StateDict) {
	t.Helper()
	want := mapStateDict()
	dir := filepath.Join(t.TempDir(), "checkpoint_1")
	f, err := New(Options{Codec: "raw", ChunkBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Save(dir, want); err != nil {
		t.Fatal(err)
	}
	if _, _, err := iox.CachedBytes(dir); errors.Is(err, unix.ENOSYS) {
		t.Skip("this kernel has no cachestat, so Load never maps")
	}
	if err := iox.FillCache(dir); err != nil {
		t.Fatal(err)
	}
	return f, dir, want
}

// TestLoadMapsCachedChunks checks which tensors a load maps from the page
// cache, that every tensor has the saved bytes either way, and that
// nothing is mapped when the files are not all cached or the options
// ask for a copy.
func TestLoadMapsCachedChunks(t *testing.T) {
	_, dir, want := savedCached(t)
	none := make(map[string]string)
	for name := range wantMapped {
		none[name] = ""
	}

	for _, c := range []struct {
		name   string
		opts   Options
		cached bool
		want   map[string]string
	}{
		{"cached", Options{Codec: "raw"}, true, wantMapped},
		{"cold", Options{Codec: "raw"}, false, none},
		{"copy-cached", Options{Codec: "raw", CopyCached: true}, true, none},
		{"buffered-read", Options{Codec: "raw", BufferedRead: true}, true, none},
		{"verify", Options{Codec: "raw", VerifyOnLoad: true}, true, none},
	} {
		t.Run(c.name, func(t *testing.T) {
			set := iox.DropCache
			if c.cached {
				set = iox.FillCache
			}
			if err := set(dir); err != nil {
				t.Fatal(err)
			}
			f, err := New(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			tensortest.Equal(t, want, got)
			mapped := mappedTensors(t, got, dir)
			for name, file := range c.want {
				if mapped[name] != file {
					t.Errorf("tensor %s: maps %q, want %q", name, mapped[name], file)
				}
			}
		})
	}

	t.Run("restore-dtype", func(t *testing.T) {
		if err := iox.FillCache(dir); err != nil {
			t.Fatal(err)
		}
		f, err := New(Options{Codec: "raw", RestoreDType: tensor.Float32})
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer got.Close()
		casts := 0
		for name, file := range mappedTensors(t, got, dir) {
			if want.Lookup(name).DType == tensor.Float32 {
				continue // stored as float32: nothing to cast
			}
			casts++
			if file != "" {
				t.Errorf("tensor %s was cast to float32 yet maps %s", name, file)
			}
		}
		if casts == 0 {
			t.Fatal("no tensor was cast, so this case checks nothing")
		}
	})
}

// TestLoadMappedWritesStayPrivate writes to every byte of a mapped
// tensor: the writes show in the state dict, but the chunk files and a
// second load keep the saved bytes.
func TestLoadMappedWritesStayPrivate(t *testing.T) {
	f, dir, want := savedCached(t)

	first, err := f.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	rows := first.Lookup("rows")
	if file := mappedFile(t, rows.Data); file == "" {
		t.Fatal("tensor rows is not mapped, so this test checks nothing")
	}
	for i := range rows.Data {
		rows.Data[i] = ^rows.Data[i]
	}

	second, err := f.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	tensortest.Equal(t, want, second)
	if slices.Equal(rows.Data, second.Lookup("rows").Data) {
		t.Error("a write to the first load's tensor shows in the second load")
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	chunk, err := os.ReadFile(filepath.Join(dir, "rows", "0.0"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(chunk, want.Lookup("rows").Data[:len(chunk)]) {
		t.Error("a write to a mapped tensor reached its chunk file")
	}
}

// TestLoadMapsOnlyWholeFiles evicts part of one chunk file: that tensor
// is read, and the others are still mapped.
func TestLoadMapsOnlyWholeFiles(t *testing.T) {
	f, dir, want := savedCached(t)

	// Evict page 1 of the third chunk of rows.
	chunk := filepath.Join(dir, "rows", "2.0")
	fd, err := unix.Open(chunk, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Fadvise(fd, 4096, 4096, unix.FADV_DONTNEED)
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}

	got, err := f.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	tensortest.Equal(t, want, got)
	mapped := mappedTensors(t, got, dir)
	if mapped["rows"] != "" {
		t.Errorf("with page 1 of %s evicted, rows maps %q; want a copy", chunk, mapped["rows"])
	}
	if mapped["single"] != "single/0.0" {
		t.Errorf("with page 1 of %s evicted, single maps %q; want single/0.0", chunk, mapped["single"])
	}
}

// TestLoadMapsWithinMappingLimit lowers the limit on mapped chunk files
// below the four chunks of rows: rows is read, and the one-chunk tensors
// are still mapped.
func TestLoadMapsWithinMappingLimit(t *testing.T) {
	saved := maxMappings
	maxMappings = 3
	defer func() { maxMappings = saved }()

	f, dir, want := savedCached(t)

	got, err := f.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	tensortest.Equal(t, want, got)
	mapped := mappedTensors(t, got, dir)
	if mapped["rows"] != "" {
		t.Errorf("rows maps %q with a limit of 3 mapped files; want a copy", mapped["rows"])
	}
	if mapped["single"] != "single/0.0" {
		t.Errorf("single maps %q; want single/0.0", mapped["single"])
	}
}
