package bench

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"ckptbench/formats"
)

// A Variant is one column of the comparison: a format with its settings.
type Variant struct {
	formats.Format
	// Keys are the name parts that identify it in benchmark names, such as
	// "format=zarr/codec=gzip" or "format=disk/streams=16".
	Keys string
	// ID is the short form that BENCH_FORMATS and FORMATS use:
	// "zarr/gzip", "disk/16".
	ID string
	// Reference marks the disk reference, whose loads return raw bytes
	// rather than the model's tensors.
	Reference bool
	// LoadOnly marks a variant whose saves are another variant's, such as
	// verify-on-load copies, so BenchmarkSave skips it.
	LoadOnly bool
}

// registry lists every variant in the order make bench runs them. The
// torch build tag adds torchsave (see variants_torch.go).
var registry = []Variant{
	reference(1),
	reference(16),
}

func reference(streams int) Variant {
	return Variant{
		Format:    Disk{Streams: streams},
		Keys:      fmt.Sprintf("format=disk/streams=%d", streams),
		ID:        fmt.Sprintf("disk/%d", streams),
		Reference: true,
	}
}

// register adds a format variant, deriving its keys from Name and Codec.
func register(f formats.Format) {
	v := Variant{Format: f, Keys: "format=" + f.Name(), ID: f.Name()}
	if c := f.Codec(); c != "" {
		v.Keys += "/codec=" + c
		v.ID += "/" + c
	}
	registry = append(registry, v)
}

// Variants returns the registered variants that BENCH_FORMATS selects: a
// comma-separated list of IDs, where a bare format name ("zarr") selects
// all its codecs and "disk" both references. Empty selects all.
func Variants() ([]Variant, error) {
	sel := strings.FieldsFunc(os.Getenv("BENCH_FORMATS"), func(r rune) bool { return r == ',' || r == ' ' })
	if len(sel) == 0 {
		return slices.Clone(registry), nil
	}
	var out []Variant
	for _, s := range sel {
		n := len(out)
		for _, v := range registry {
			if v.ID == s || v.Name() == s {
				out = append(out, v)
			}
		}
		if len(out) == n {
			return nil, fmt.Errorf("BENCH_FORMATS: no variant %q; known: %s", s, strings.Join(IDs(), ", "))
		}
	}
	return out, nil
}

// IDs lists the IDs of all registered variants.
func IDs() []string {
	ids := make([]string, len(registry))
	for i, v := range registry {
		ids[i] = v.ID
	}
	return ids
}
