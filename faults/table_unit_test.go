package faults

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTableRoundTrip renders cells and parses them back.
func TestTableRoundTrip(t *testing.T) {
	cells := map[cellKey]string{
		{"kill-first", "a/raw", "checkpoint path"}: "old, bit for bit",
		{"kill-first", "a/raw", "leftovers"}:       "none",
		{"kill-first", "b", "checkpoint path"}:     "new, bit for bit",
		{"bitflip", "b", "Load"}:                   "fails, names file",
	}
	got, order := parseTable(renderTable(cells, []string{"a/raw", "b"}))
	if d := cmp.Diff(cells, got); d != "" {
		t.Errorf("cells changed in a round trip (-rendered +parsed):\n%s", d)
	}
	if !slices.Equal(order, []string{"a/raw", "b"}) {
		t.Errorf("variant order %v, want [a/raw b]", order)
	}
}

func TestMergeOrder(t *testing.T) {
	cases := []struct{ doc, run, want []string }{
		{nil, []string{"a", "b"}, []string{"a", "b"}},
		{[]string{"a", "c"}, []string{"a", "b", "c"}, []string{"a", "b", "c"}},
		{[]string{"b", "c"}, []string{"t", "t+verify"}, []string{"t", "t+verify", "b", "c"}},
	}
	for _, c := range cases {
		if got := mergeOrder(c.doc, c.run); !slices.Equal(got, c.want) {
			t.Errorf("mergeOrder(%v, %v) = %v, want %v", c.doc, c.run, got, c.want)
		}
	}
}
