package exp

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const size = 448 << 20

func mmap(n int) []byte {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		panic(err)
	}
	return b
}

func dropCache(path string) {
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	f.Sync()
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	f.Close()
}

func readDirect(path string, buf []byte, req, streams int) time.Duration {
	dropCache(path)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		panic(err)
	}
	defer unix.Close(fd)
	start := time.Now()
	var wg sync.WaitGroup
	for s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := s * req; off < len(buf); off += streams * req {
				n, err := unix.Pread(fd, buf[off:min(off+req, len(buf))], int64(off))
				if err != nil || n != min(req, len(buf)-off) {
					panic(fmt.Sprint(n, err))
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func TestDisk(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/f"
	data := mmap(size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	os.WriteFile(path, data, 0o644)
	pre := mmap(size)
	for i := 0; i < len(pre); i += 4096 {
		pre[i] = 1
	}
	mbs := func(d time.Duration) string { return fmt.Sprintf("%.0f MB/s", float64(size)/d.Seconds()/1e6) }
	for rep := range 2 {
		for _, cfg := range []struct{ req, streams int }{{4 << 20, 1}, {4 << 20, 4}, {4 << 20, 16}, {64 << 20, 1}, {56 << 20, 8}, {1 << 20, 32}} {
			d1 := readDirect(path, pre, cfg.req, cfg.streams)
			fresh := mmap(size)
			d2 := readDirect(path, fresh, cfg.req, cfg.streams)
			unix.Munmap(fresh)
			fresh = mmap(size)
			unix.Madvise(fresh, unix.MADV_HUGEPAGE)
			d3 := readDirect(path, fresh, cfg.req, cfg.streams)
			unix.Munmap(fresh)
			t.Logf("rep %d req %dMiB streams %d: prefaulted %s, fresh %s, fresh+THP %s", rep, cfg.req>>20, cfg.streams, mbs(d1), mbs(d2), mbs(d3))
		}
	}
}
