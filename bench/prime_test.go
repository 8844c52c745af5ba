package bench

import (
	"os"
	"strings"
	"testing"
)

func TestPrimeSize(t *testing.T) {
	for _, c := range []struct{ n, free, want int64 }{
		{n: 1 << 30, free: 8 << 30, want: 1 << 30},
		{n: 8 << 30, free: 1 << 30, want: 1<<30 - primeSlack},
		{n: 1 << 30, free: primeSlack, want: 0},
		{n: 1 << 30, free: primeSlack / 2, want: 0},
		{n: 0, free: 8 << 30, want: 0},
	} {
		if got := primeSize(c.n, c.free); got != c.want {
			t.Errorf("primeSize(%d, %d) = %d, want %d", c.n, c.free, got, c.want)
		}
	}
}

// TestPrimeMemoryTouchesAndFrees checks that priming makes the pages
// resident (the peak resident set grows by the primed bytes) and gives
// them back (the resident set does not stay grown).
func TestPrimeMemoryTouchesAndFrees(t *testing.T) {
	const n = 128 << 20
	free, err := memFree()
	if err != nil {
		t.Fatal(err)
	}
	if free < n+primeSlack {
		t.Skipf("needs %d free bytes, has %d", n+primeSlack, free)
	}

	if err := ResetPeakRSS(); err != nil {
		t.Fatal(err)
	}
	before, err := RSS()
	if err != nil {
		t.Fatal(err)
	}
	got, err := PrimeMemory(n)
	if err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Fatalf("PrimeMemory(%d) touched %d bytes", n, got)
	}

	peak, err := PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	after, err := RSS()
	if err != nil {
		t.Fatal(err)
	}
	if peak-before < n*9/10 {
		t.Errorf("peak RSS grew by %d bytes while priming %d", peak-before, n)
	}
	if after-before > n/10 {
		t.Errorf("RSS grew by %d bytes and stayed after priming %d", after-before, n)
	}
}

func TestKBFieldNamesFileAndKey(t *testing.T) {
	path := t.TempDir() + "/meminfo"
	if err := os.WriteFile(path, []byte("MemTotal: 100 kB\nMemFree: 12\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := kBField(path, "MemTotal:"); err != nil || got != 100<<10 {
		t.Errorf("kBField(MemTotal:) = %d, %v; want %d", got, err, 100<<10)
	}
	for _, key := range []string{"MemFree:", "MemAvailable:"} {
		_, err := kBField(path, key)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), key) {
			t.Errorf("kBField(%s) error %v does not name %s and the key", key, err, path)
		}
	}
}
