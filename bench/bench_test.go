package bench

import (
	"fmt"
	"os"
	"testing"
)

var setup *Setup

func TestMain(m *testing.M) {
	// BENCH_LIST=1 prints the registered variant IDs, one a line, for
	// scripts/bench.sh to check FORMATS against before a long run.
	if os.Getenv("BENCH_LIST") != "" {
		for _, id := range IDs() {
			fmt.Println(id)
		}
		os.Exit(0)
	}
	var err error
	if setup, err = NewSetup(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	fmt.Print(setup.Describe(DeviceName()))
	os.Exit(m.Run())
}

// BenchmarkSave measures durable saves of the whole model with every
// selected variant.
func BenchmarkSave(b *testing.B) {
	ran := false
	for _, v := range variants(b) {
		if v.LoadOnly {
			continue
		}
		ran = true
		b.Run(setup.Name(v), func(b *testing.B) { setup.RunSave(b, v) })
	}
	if !ran {
		b.Skip("every selected variant is load-only")
	}
}

// BenchmarkLoad measures loads of the whole model with every selected
// variant, first with a cold page cache, then a warm one.
func BenchmarkLoad(b *testing.B) {
	for _, v := range variants(b) {
		for _, cache := range []string{Cold, Warm} {
			b.Run(setup.Name(v, "cache="+cache), func(b *testing.B) { setup.RunLoad(b, v, cache) })
		}
	}
}

func variants(b *testing.B) []Variant {
	vs, err := Variants()
	if err != nil {
		b.Fatal(err)
	}
	return vs
}
