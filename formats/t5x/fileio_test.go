package t5x

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"ckptbench/iox"
)

// TestOpenChunkFollowsPageCache checks that a fully cached chunk file is
// read through the page cache and an evicted one with O_DIRECT. Both paths
// must read the same bytes, including a partial last block.
func TestOpenChunkFollowsPageCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.0")
	want := make([]byte, 3*blockSize+123)
	for i := range want {
		want[i] = byte(i*7 + i>>9)
	}
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	if fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT, 0); err != nil {
		t.Skipf("the file system under %s rejects O_DIRECT: %v", path, err)
	} else {
		unix.Close(fd)
	}
	if _, _, err := iox.CachedBytes(path); errors.Is(err, unix.ENOSYS) {
		t.Skip("this kernel has no cachestat system call")
	}

	tail := alignedBlock()
	for _, state := range []struct {
		name   string
		set    func(string) error
		direct bool
	}{
		{"warm", iox.FillCache, false},
		{"cold", iox.DropCache, true},
	} {
		if err := state.set(path); err != nil {
			t.Fatal(err)
		}
		cf, err := openChunk(path, true)
		if err != nil {
			t.Fatal(err)
		}
		if cf.direct != state.direct {
			t.Errorf("%s file: O_DIRECT = %v, want %v", state.name, cf.direct, state.direct)
		}
		got := alignedBuffer(len(want))
		if err := cf.readInto(got, tail); err != nil {
			t.Fatalf("%s file: %v", state.name, err)
		}
		cf.close()
		if !bytes.Equal(got, want) {
			t.Errorf("%s file: read bytes differ from the written ones", state.name)
		}
	}

	// Options.BufferedRead passes direct=false: never O_DIRECT.
	if err := iox.DropCache(path); err != nil {
		t.Fatal(err)
	}
	cf, err := openChunk(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer cf.close()
	if cf.direct {
		t.Error("openChunk(direct=false) opened the file with O_DIRECT")
	}
}

// alignedBuffer returns n bytes starting on a block boundary.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+blockSize)
	first := 0
	for !aligned(b[first:]) {
		first++
	}
	return b[first : first+n]
}

func alignedBlock() []byte { return alignedBuffer(blockSize) }
