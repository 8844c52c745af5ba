package iox

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCacheStates drops and fills the page cache for a directory and
// checks each state with CachedBytes.
func TestCacheStates(t *testing.T) {
	dir := t.TempDir()
	sizes := map[string]int{"a": 3 << 20, "sub/b": 12345, "sub/empty": 0}
	var total int64
	for name, n := range sizes {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 31)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		total += int64(n)
	}

	if err := DropCache(dir); err != nil {
		t.Fatal(err)
	}
	cached, got, err := CachedBytes(dir)
	if errors.Is(err, unix.ENOSYS) {
		t.Skip("this kernel has no cachestat system call")
	}
	if err != nil {
		t.Fatal(err)
	}
	if got != total {
		t.Errorf("CachedBytes total = %d, want %d", got, total)
	}
	if cached != 0 {
		t.Errorf("after DropCache, %d bytes are cached, want 0", cached)
	}

	if err := FillCache(dir); err != nil {
		t.Fatal(err)
	}
	if cached, _, err = CachedBytes(dir); err != nil {
		t.Fatal(err)
	}
	if cached != total {
		t.Errorf("after FillCache, %d of %d bytes are cached", cached, total)
	}
}

func TestFillCacheMissingPath(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nothing")
	if err := FillCache(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("FillCache(%s) = %v, want a not-exist error", missing, err)
	}
}
