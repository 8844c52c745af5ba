package torchpickle

import (
	"fmt"
	"math"
	"math/big"
	"path"
	"strings"

	"github.com/nlpodyssey/gopickle/types"

	"ckptbench/tensor"
)

// This file decodes the parts of PyTorch's pickles that refer to tensor
// data: typed storage classes, persistent storage IDs and
// torch._utils._rebuild_tensor_v2. torch.save's zip and legacy formats
// and libtorch's TorchScript archives share them.

// Storage is one PyTorch storage that a pickle refers to by key.
type Storage struct {
	Key   string
	DType tensor.DType
	// Numel is the storage's size in elements of DType.
	Numel int64
}

// View is a tensor as a pickle describes it: a view of a Storage.
type View struct {
	Storage *Storage
	// Offset is the view's first element in the storage.
	Offset int64
	Shape  []int64
	Stride []int64
}

// storageClasses maps torch's typed storage classes to dtypes. PyTorch
// pickles every tensor's storage as one of these, by the tensor's dtype.
var storageClasses = map[string]tensor.DType{
	"HalfStorage":     tensor.Float16,
	"BFloat16Storage": tensor.BFloat16,
	"FloatStorage":    tensor.Float32,
	"DoubleStorage":   tensor.Float64,
	"CharStorage":     tensor.Int8,
	"ByteStorage":     tensor.Uint8,
	"IntStorage":      tensor.Int32,
	"LongStorage":     tensor.Int64,
	"BoolStorage":     tensor.Bool,
}

// StorageClass is the value that a pickle's GLOBAL torch.<X>Storage loads.
type StorageClass struct {
	Name  string
	DType tensor.DType
}

// FindStorageClass resolves the GLOBAL torch.<name>. It reports false for
// a name that is not a storage class, and an error for a storage of a
// dtype this package does not support.
func FindStorageClass(name string) (*StorageClass, bool, error) {
	if d, ok := storageClasses[name]; ok {
		return &StorageClass{Name: name, DType: d}, true, nil
	}
	if strings.HasSuffix(name, "Storage") {
		return nil, true, fmt.Errorf("storage type torch.%s is not supported (supported dtypes: float16, bfloat16, float32, float64, int8, uint8, int32, int64, bool)", name)
	}
	return nil, false, nil
}

// Storages collects the storages of one pickle by key, so that every
// reference to a key resolves to the same Storage.
type Storages map[string]*Storage

// Resolve returns the storage of a persistent ID, the tuple ("storage",
// storage class, key, location, numel) that torch.save's persistent_id
// writes. With legacy set, the tuple has a sixth element, a storage view
// that must be None (pre-1.6 files).
func (ss Storages) Resolve(pid any, legacy bool) (*Storage, error) {
	t, ok := pid.(*types.Tuple)
	if !ok || t.Len() == 0 {
		return nil, fmt.Errorf("persistent ID %v is not a storage tuple", pid)
	}
	if kind, _ := t.Get(0).(string); kind != "storage" {
		return nil, fmt.Errorf("persistent ID of kind %v is not supported; only storages are", t.Get(0))
	}
	want := 5
	if legacy {
		want = 6
	}
	if t.Len() != want {
		return nil, fmt.Errorf("storage reference has %d elements, want %d", t.Len(), want)
	}
	class, ok := t.Get(1).(*StorageClass)
	if !ok {
		return nil, fmt.Errorf("storage reference names %v, not a torch storage class", t.Get(1))
	}
	key, ok := t.Get(2).(string)
	if !ok || key == "" || path.Base(key) != key {
		return nil, fmt.Errorf("storage key %v is not a record name", t.Get(2))
	}
	numel, err := toInt64(t.Get(4))
	if err != nil || numel < 0 || numel > math.MaxInt64/int64(class.DType.Size()) {
		return nil, fmt.Errorf("storage %s: invalid size %v", key, t.Get(4))
	}
	if legacy && t.Get(5) != nil {
		return nil, fmt.Errorf("storage %s is a storage view, which only PyTorch before 0.4 wrote; re-save the file with a current PyTorch", key)
	}

	if s, ok := ss[key]; ok {
		if s.DType != class.DType || s.Numel != numel {
			return nil, fmt.Errorf("storage %s is referred to as %d elements of %s and as %d of %s", key, s.Numel, s.DType, numel, class.DType)
		}
		return s, nil
	}
	s := &Storage{Key: key, DType: class.DType, Numel: numel}
	ss[key] = s
	return s, nil
}

// RebuildTensor replaces torch._utils._rebuild_tensor_v2(storage,
// storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
// and the older _rebuild_tensor(storage, storage_offset, size, stride).
// It returns a *View.
func RebuildTensor(args ...any) (any, error) {
	if len(args) < 4 {
		return nil, fmt.Errorf("_rebuild_tensor_v2 got %d arguments, want at least 4", len(args))
	}
	s, ok := args[0].(*Storage)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor_v2: first argument %v is not a storage", args[0])
	}
	offset, err := toInt64(args[1])
	if err != nil || offset < 0 {
		return nil, fmt.Errorf("_rebuild_tensor_v2: invalid storage offset %v", args[1])
	}
	shape, err := toInt64s(args[2])
	if err != nil {
		return nil, fmt.Errorf("_rebuild_tensor_v2: invalid size: %w", err)
	}
	stride, err := toInt64s(args[3])
	if err != nil {
		return nil, fmt.Errorf("_rebuild_tensor_v2: invalid stride: %w", err)
	}
	if len(shape) != len(stride) {
		return nil, fmt.Errorf("_rebuild_tensor_v2: size %v and stride %v differ in length", shape, stride)
	}
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("_rebuild_tensor_v2: size %v has a negative dimension", shape)
		}
	}
	return &View{Storage: s, Offset: offset, Shape: shape, Stride: stride}, nil
}

// Callable adapts a function to gopickle's types.Callable, which REDUCE
// calls.
type Callable func(args ...any) (any, error)

// Call calls c.
func (c Callable) Call(args ...any) (any, error) { return c(args...) }

func toInt64(v any) (int64, error) {
	switch v := v.(type) {
	case int:
		return int64(v), nil
	case *big.Int:
		if v.IsInt64() {
			return v.Int64(), nil
		}
	}
	return 0, fmt.Errorf("%v is not an integer that fits in int64", v)
}

func toInt64s(v any) ([]int64, error) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, fmt.Errorf("%v is not a tuple", v)
	}
	out := make([]int64, t.Len())
	for i := range out {
		n, err := toInt64(t.Get(i))
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}
