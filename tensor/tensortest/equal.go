// Package tensortest compares state dicts in tests: metadata with go-cmp,
// payloads with bytes.Equal, because go-cmp takes seconds on payloads of
// millions of elements.
package tensortest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"ckptbench/tensor"
)

// Diff returns "" when got has the same tensors as want, in the same order,
// with the same names, dtypes, shapes and payload bytes. Otherwise it
// describes the first difference: the metadata diff, or the first tensor
// and byte offset whose payloads differ.
func Diff(want, got *tensor.StateDict) string {
	if d := cmp.Diff(want.Metas(), got.Metas(), cmpopts.EquateEmpty()); d != "" {
		return "metadata differs (-want +got):\n" + d
	}
	for i, w := range want.Tensors {
		g := got.Tensors[i]
		if bytes.Equal(w.Data, g.Data) {
			continue
		}
		off := 0
		for off < len(w.Data) && off < len(g.Data) && w.Data[off] == g.Data[off] {
			off++
		}
		return fmt.Sprintf("payload of %s differs first at byte %d of %d (got %d bytes)", w.Name, off, len(w.Data), len(g.Data))
	}
	return ""
}

// Equal fails t when got differs from want; see Diff.
func Equal(t testing.TB, want, got *tensor.StateDict) {
	t.Helper()
	if d := Diff(want, got); d != "" {
		t.Fatal(d)
	}
}
