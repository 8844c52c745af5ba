package torchpickle

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"

	"ckptbench/tensor"
)

// storage is one PyTorch storage that the pickle refers to by key.
type storage struct {
	key   string
	dtype tensor.DType
	// numel is the storage's size in elements of dtype.
	numel int64
}

// tensorRef is a tensor as the pickle describes it: a view of a storage.
type tensorRef struct {
	storage *storage
	// offset is the view's first element in the storage.
	offset int64
	shape  []int64
	stride []int64
}

// namedRef is one entry of the state dict, in pickle order.
type namedRef struct {
	name string
	ref  *tensorRef
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

// storageClass is the value a pickle's GLOBAL torch.<X>Storage loads.
type storageClass struct {
	name  string
	dtype tensor.DType
}

// callable adapts a function to gopickle's types.Callable, which REDUCE
// calls.
type callable func(args ...any) (any, error)

func (c callable) Call(args ...any) (any, error) { return c(args...) }

// unpickler decodes one state-dict pickle and collects its storages.
type unpickler struct {
	storages map[string]*storage
	// legacy is set for the pre-1.6 format, whose persistent IDs carry a
	// sixth element (a storage view, always None since PyTorch 0.4).
	legacy bool
}

func newUnpickler(legacy bool) *unpickler {
	return &unpickler{storages: make(map[string]*storage), legacy: legacy}
}

// load unpickles one pickle from r and returns the state dict's entries in
// order. gopickle can panic on malformed input (for example an empty
// LONG1 argument), so panics become errors here.
func (up *unpickler) load(r io.Reader) (entries []namedRef, err error) {
	defer func() {
		if p := recover(); p != nil {
			entries, err = nil, fmt.Errorf("the pickle is malformed: %v", p)
		}
	}()
	u := pickle.NewUnpickler(r)
	u.FindClass = up.findClass
	u.PersistentLoad = up.persistentLoad
	v, err := u.Load()
	if err != nil {
		return nil, err
	}
	return stateDictEntries(v)
}

// loadValue unpickles one pickle that holds a plain value (the legacy
// format's header pickles), with every class rejected.
func loadValue(r io.Reader) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, fmt.Errorf("the pickle is malformed: %v", p)
		}
	}()
	u := pickle.NewUnpickler(r)
	u.FindClass = func(module, name string) (any, error) {
		return nil, fmt.Errorf("unexpected class %s.%s", module, name)
	}
	return u.Load()
}

// findClass resolves the GLOBALs a state dict uses and rejects the rest,
// so no pickle can make the reader build arbitrary objects.
// collections.OrderedDict never gets here: gopickle resolves it itself.
func (up *unpickler) findClass(module, name string) (any, error) {
	switch module + "." + name {
	case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
		return callable(rebuildTensor), nil
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		return callable(rebuildParameter), nil
	}
	if module == "torch" {
		if d, ok := storageClasses[name]; ok {
			return &storageClass{name: name, dtype: d}, nil
		}
		if strings.HasSuffix(name, "Storage") {
			return nil, fmt.Errorf("storage type torch.%s is not supported (supported dtypes: float16, bfloat16, float32, float64, int8, uint8, int32, int64, bool)", name)
		}
	}
	return nil, fmt.Errorf("unsupported Python object %s.%s; only state dicts of tensors can be read (save model.state_dict(), not the model or other objects)", module, name)
}

// persistentLoad resolves a storage reference, the tuple
// ("storage", storage class, key, location, numel) that torch.save's
// persistent_id writes (plus a None view in the legacy format).
func (up *unpickler) persistentLoad(pid any) (any, error) {
	t, ok := pid.(*types.Tuple)
	if !ok || t.Len() == 0 {
		return nil, fmt.Errorf("persistent ID %v is not a storage tuple", pid)
	}
	if kind, _ := t.Get(0).(string); kind != "storage" {
		return nil, fmt.Errorf("persistent ID of kind %v is not supported; only storages are", t.Get(0))
	}

	want := 5
	if up.legacy {
		want = 6
	}
	if t.Len() != want {
		return nil, fmt.Errorf("storage reference has %d elements, want %d", t.Len(), want)
	}
	class, ok := t.Get(1).(*storageClass)
	if !ok {
		return nil, fmt.Errorf("storage reference names %v, not a torch storage class", t.Get(1))
	}
	key, ok := t.Get(2).(string)
	if !ok {
		return nil, fmt.Errorf("storage key %v is not a string", t.Get(2))
	}
	numel, err := toInt64(t.Get(4))
	if err != nil || numel < 0 || numel > math.MaxInt64/int64(class.dtype.Size()) {
		return nil, fmt.Errorf("storage %s: invalid size %v", key, t.Get(4))
	}

	if up.legacy && t.Get(5) != nil {
		return nil, fmt.Errorf("storage %s is a storage view, which only PyTorch before 0.4 wrote; re-save the file with a current PyTorch", key)
	}

	if s, ok := up.storages[key]; ok {
		if s.dtype != class.dtype || s.numel != numel {
			return nil, fmt.Errorf("storage %s is referred to as %d elements of %s and as %d of %s", key, s.numel, s.dtype, numel, class.dtype)
		}
		return s, nil
	}
	s := &storage{key: key, dtype: class.dtype, numel: numel}
	up.storages[key] = s
	return s, nil
}

// rebuildTensor replaces torch._utils._rebuild_tensor_v2(storage,
// storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
// and the older _rebuild_tensor(storage, storage_offset, size, stride).
func rebuildTensor(args ...any) (any, error) {
	if len(args) < 4 {
		return nil, fmt.Errorf("_rebuild_tensor_v2 got %d arguments, want at least 4", len(args))
	}
	s, ok := args[0].(*storage)
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
	return &tensorRef{storage: s, offset: offset, shape: shape, stride: stride}, nil
}

// rebuildParameter replaces torch._utils._rebuild_parameter(data,
// requires_grad, backward_hooks), which wraps a tensor in nn.Parameter.
func rebuildParameter(args ...any) (any, error) {
	if len(args) == 0 {
		return nil, errors.New("_rebuild_parameter got no arguments")
	}
	ref, ok := args[0].(*tensorRef)
	if !ok {
		return nil, fmt.Errorf("_rebuild_parameter: first argument %v is not a tensor", args[0])
	}
	return ref, nil
}

// stateDictEntries returns the entries of the pickled top-level value,
// which must be a dict or OrderedDict of name to tensor.
func stateDictEntries(v any) ([]namedRef, error) {
	type kv struct{ key, value any }
	var items []kv
	switch d := v.(type) {
	case *types.OrderedDict:
		for e := d.List.Front(); e != nil; e = e.Next() {
			entry := e.Value.(*types.OrderedDictEntry)
			items = append(items, kv{entry.Key, entry.Value})
		}
	case *types.Dict:
		for _, entry := range *d {
			items = append(items, kv{entry.Key, entry.Value})
		}
	default:
		return nil, fmt.Errorf("the pickle contains %s, not a state dict (a dict of name to tensor)", describe(v))
	}
	seen := make(map[string]bool, len(items))
	entries := make([]namedRef, 0, len(items))
	for _, it := range items {
		name, ok := it.key.(string)
		if !ok {
			return nil, fmt.Errorf("state dict key %v is not a string", it.key)
		}
		if seen[name] {
			return nil, fmt.Errorf("state dict key %q appears twice", name)
		}
		seen[name] = true
		ref, ok := it.value.(*tensorRef)
		if !ok {
			return nil, fmt.Errorf("state dict entry %q is %s, not a tensor; only flat state dicts can be read, so save the inner state dict of a checkpoint that nests the weights", name, describe(it.value))
		}
		entries = append(entries, namedRef{name: name, ref: ref})
	}
	return entries, nil
}

// describe names the Python type behind a decoded pickle value, with its
// article.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case *types.Dict, *types.OrderedDict:
		return "a dict"
	case *types.List:
		return "a list"
	case *types.Tuple:
		return "a tuple"
	case string:
		return "a str"
	case int, *big.Int:
		return "an int"
	case float64:
		return "a float"
	case bool:
		return "a bool"
	case *types.GenericObject:
		return "a " + v.Class.Module + "." + v.Class.Name
	default:
		return fmt.Sprintf("a %T", v)
	}
}

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
