package torchsave

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"

	"ckptbench/formats"
	"ckptbench/formats/torchpickle"
)

// maxPickleBytes bounds the data.pkl record that readArchive reads into
// memory. The pickle of OpenLLaMA-3B's 237 tensors is about 25 KB.
const maxPickleBytes = 64 << 20

// archive is the structure of a TorchScript archive, read in pure Go
// from its zip central directory and its data.pkl, without libtorch.
type archive struct {
	path string
	zip  *zip.ReadCloser
	// prefix is the folder that contains every record.
	prefix string
	// tensors are the module's parameters in pickle order, named as
	// libtorch names them: nested modules' names joined with ".".
	tensors []archiveTensor
	// records maps each storage key to its record, data/<key>.
	records map[string]*zip.File
}

// archiveTensor is one parameter as data.pkl describes it: a view of a
// storage record, with the name libtorch gives it.
type archiveTensor struct {
	name string
	torchpickle.View
}

// readArchive opens the archive at path and parses its data.pkl. It reads
// the central directory and the pickle only, not the tensor records. The
// caller closes a.zip.
func readArchive(path string) (*archive, error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("torchsave: %s is not a readable zip archive (%w); the file is truncated or damaged, so restore it from a copy or re-save it", path, err)
	}
	a := &archive{path: path, zip: zr, records: make(map[string]*zip.File)}
	if err := a.parse(); err != nil {
		zr.Close()
		return nil, err
	}
	return a, nil
}

// parse finds the archive's records and decodes data.pkl.
func (a *archive) parse() error {
	var pkl *zip.File
	for _, f := range a.zip.File {
		prefix, rest, ok := strings.Cut(f.Name, "/")
		if !ok {
			return fmt.Errorf("torchsave: %s: record %q is not inside the archive's folder; this is not a TorchScript archive", a.path, f.Name)
		}
		if a.prefix == "" {
			a.prefix = prefix
		} else if prefix != a.prefix {
			return fmt.Errorf("torchsave: %s: records %q and %q are in different folders; this is not a TorchScript archive", a.path, a.prefix+"/", f.Name)
		}
		switch {
		case rest == "data.pkl":
			pkl = f
		case strings.HasPrefix(rest, "data/"):
			a.records[strings.TrimPrefix(rest, "data/")] = f
		}
	}

	if pkl == nil {
		return fmt.Errorf("torchsave: %s has no data.pkl record; the file is damaged or not a TorchScript archive", a.path)
	}
	if pkl.UncompressedSize64 > maxPickleBytes {
		return fmt.Errorf("torchsave: %s: %s has %d bytes, more than the %d this reader accepts; the file is damaged", a.path, pkl.Name, pkl.UncompressedSize64, maxPickleBytes)
	}
	r, err := pkl.Open()
	if err != nil {
		return fmt.Errorf("torchsave: %s: open %s: %w", a.path, pkl.Name, err)
	}
	defer r.Close()
	// Read the whole record first, so that the zip reader checks its
	// CRC-32 before the pickle is trusted.
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("torchsave: %s: read %s: %w; the file is damaged, so restore it from a copy or re-save it", a.path, pkl.Name, checksumError(err))
	}
	if a.tensors, err = decodeModule(b); err != nil {
		return fmt.Errorf("torchsave: %s: %s: %w; the file is damaged or was not written by libtorch's serializer", a.path, pkl.Name, err)
	}
	return nil
}

// record returns the record of t's storage and checks its size against
// the pickle.
func (a *archive) record(t archiveTensor) (*zip.File, error) {
	s := t.Storage
	f, ok := a.records[s.Key]
	if !ok {
		return nil, fmt.Errorf("torchsave: %s: tensor %q: record %s/data/%s is missing; the file is damaged, so restore it from a copy or re-save it", a.path, t.name, a.prefix, s.Key)
	}
	want := uint64(s.Numel) * uint64(s.DType.Size())
	if f.UncompressedSize64 != want {
		return nil, fmt.Errorf("torchsave: %s: tensor %q: record %s has %d bytes, but data.pkl describes %d elements of %s (%d bytes); the file is damaged, so restore it from a copy or re-save it", a.path, t.name, f.Name, f.UncompressedSize64, s.Numel, s.DType, want)
	}
	if end, ok := viewEnd(t); !ok || end > s.Numel {
		return nil, fmt.Errorf("torchsave: %s: tensor %q: shape %v with stride %v at offset %d does not fit in the %d elements of record %s; the file is damaged", a.path, t.name, t.Shape, t.Stride, t.Offset, s.Numel, f.Name)
	}
	return f, nil
}

// viewEnd returns one past the last storage element that t's view
// reaches, or false when that overflows.
func viewEnd(t archiveTensor) (int64, bool) {
	end := t.Offset + 1
	for i, d := range t.Shape {
		if d == 0 {
			return t.Offset, true
		}
		if t.Stride[i] < 0 || d-1 > 0 && t.Stride[i] > (math.MaxInt64-end)/(d-1) {
			return 0, false
		}
		end += (d - 1) * t.Stride[i]
	}
	return end, true
}

// coversStorage reports whether t is its whole storage in C order, so its
// bytes are exactly the record's.
func (t archiveTensor) coversStorage() bool {
	if t.Offset != 0 {
		return false
	}
	n, step := int64(1), int64(1)
	for i := len(t.Shape) - 1; i >= 0; i-- {
		if t.Shape[i] != 1 && t.Stride[i] != step {
			return false
		}
		step *= t.Shape[i]
		n *= t.Shape[i]
	}
	return n == t.Storage.Numel
}

// checksumError marks a CRC-32 mismatch reported by archive/zip as
// ErrChecksum too.
func checksumError(err error) error {
	if errors.Is(err, zip.ErrChecksum) {
		return fmt.Errorf("%w: the bytes differ from the CRC-32 in the zip directory (%w)", formats.ErrChecksum, err)
	}
	return err
}

// decodeModule decodes data.pkl, which pickles the module: a __torch__
// class whose state maps each attribute name to a tensor, a nested
// module or another value.
func decodeModule(b []byte) (tensors []archiveTensor, err error) {
	// gopickle can panic on malformed input.
	defer func() {
		if p := recover(); p != nil {
			tensors, err = nil, fmt.Errorf("the pickle is malformed: %v", p)
		}
	}()
	if err := checkPickle(b); err != nil {
		return nil, err
	}
	u := pickle.NewUnpickler(strings.NewReader(string(b)))
	storages := make(torchpickle.Storages)
	u.FindClass = findClass
	u.PersistentLoad = func(pid any) (any, error) { return storages.Resolve(pid, false) }
	v, err := u.Load()
	if err != nil {
		return nil, err
	}
	root, ok := v.(*moduleObject)
	if !ok {
		return nil, fmt.Errorf("the pickle contains %T, not a TorchScript module", v)
	}
	var out []archiveTensor
	if err := root.collect("", &out, map[*moduleObject]bool{}); err != nil {
		return nil, err
	}
	return out, nil
}

// findClass resolves the GLOBALs of a TorchScript module pickle and
// rejects any other, so no pickle can build arbitrary objects.
func findClass(module, name string) (any, error) {
	switch {
	case module == "__torch__" || strings.HasPrefix(module, "__torch__."):
		return moduleClass{}, nil
	case module == "torch._utils" && name == "_rebuild_tensor_v2":
		return torchpickle.Callable(torchpickle.RebuildTensor), nil
	case module == "torch":
		if class, ok, err := torchpickle.FindStorageClass(name); ok {
			return class, err
		}
	}
	return nil, fmt.Errorf("unexpected class %s.%s in a module pickle", module, name)
}

// moduleClass is the value of a __torch__ GLOBAL; NEWOBJ instantiates it.
type moduleClass struct{}

func (moduleClass) PyNew(args ...any) (any, error) { return &moduleObject{}, nil }

// moduleObject is a pickled TorchScript module; BUILD sets its state.
type moduleObject struct {
	state *types.Dict
}

func (m *moduleObject) PySetState(state any) error {
	d, ok := state.(*types.Dict)
	if !ok {
		return fmt.Errorf("module state is %T, not a dict", state)
	}
	m.state = d
	return nil
}

// collect appends the tensors of m, and of its nested modules with their
// names joined by ".", to out. seen holds the modules already visited: a
// pickle can refer to one object twice, and a module that contained
// itself would recurse forever.
func (m *moduleObject) collect(prefix string, out *[]archiveTensor, seen map[*moduleObject]bool) error {
	if seen[m] {
		return fmt.Errorf("module %q appears twice in the pickle", prefix)
	}
	seen[m] = true
	if m.state == nil {
		return nil
	}
	for _, e := range *m.state {
		key, ok := e.Key.(string)
		if !ok {
			return fmt.Errorf("module attribute %v is not named by a string", e.Key)
		}
		name := key
		if prefix != "" {
			name = prefix + "." + key
		}
		switch v := e.Value.(type) {
		case *torchpickle.View:
			*out = append(*out, archiveTensor{name: name, View: *v})
		case *moduleObject:
			if err := v.collect(name, out, seen); err != nil {
				return err
			}
		}
	}
	return nil
}
