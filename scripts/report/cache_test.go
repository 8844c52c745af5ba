package main

import (
	"strings"
	"testing"
)

func TestCacheCheckAllInState(t *testing.T) {
	r := runOf(t,
		result("Load/format=zarr/codec=raw/model=m/cache=warm", 1, gb, gb)+" 0 off-state-B",
		result("Load/format=zarr/codec=raw/model=m/cache=cold", 2, gb, gb)+" 0 off-state-B",
	)
	got := cacheCheck(r)
	if !strings.Contains(got, "each of the 10 timed loads") || !strings.Contains(got, "every checkpoint page in the intended state") {
		t.Errorf("cacheCheck = %q, want every page in state over 10 loads", got)
	}
}

func TestCacheCheckNamesWorstLoad(t *testing.T) {
	r := runOf(t,
		result("Load/format=zarr/codec=raw/model=m/cache=warm", 1, gb, gb)+" 0 off-state-B",
		result("Load/format=t5x/codec=raw/model=m/cache=cold", 2, gb, gb)+" 4096 off-state-B",
	)
	got := cacheCheck(r)
	for _, want := range []string{"at most 4.096 kB", "t5x/raw cold load"} {
		if !strings.Contains(got, want) {
			t.Errorf("cacheCheck = %q, want it to contain %q", got, want)
		}
	}
}

func TestCacheCheckUnrecorded(t *testing.T) {
	r := runOf(t, result("Load/format=zarr/codec=raw/model=m/cache=warm", 1, gb, gb))
	if got := cacheCheck(r); got != "" {
		t.Errorf("cacheCheck = %q for results without %s, want nothing", got, unitOffState)
	}
}
