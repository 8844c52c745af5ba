// Command handover writes the benchmark's model once as a safetensors file
// for the Python peers, so they measure the very bytes the Go formats
// measure, and writes the results' config lines (weights, model, method)
// beside it as <out>.config for the bench driver to put atop the peers'
// results.
//
// It reads the same environment as the bench package (BENCH_MODEL,
// BENCH_MODEL_DIR).
package main

import (
	"flag"
	"fmt"
	"os"

	"ckptbench/bench"
	"ckptbench/formats/safetensors"
)

func main() {
	out := flag.String("out", "", "path of the safetensors file to write")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "usage: handover -out FILE.safetensors")
		os.Exit(2)
	}
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "handover:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	s, err := bench.NewSetup()
	if err != nil {
		return err
	}
	sd, err := s.Model()
	if err != nil {
		return err
	}
	if err := safetensors.WriteFile(out, sd); err != nil {
		return err
	}
	return os.WriteFile(out+".config", []byte(s.Describe(bench.DeviceName())), 0o644)
}
