package torchpickle

import (
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// namedRef is one entry of the state dict, in pickle order.
type namedRef struct {
	name string
	ref  *View
}

// unpickler decodes one state-dict pickle and collects its storages.
type unpickler struct {
	storages Storages
	// legacy is set for the pre-1.6 format, whose persistent IDs carry a
	// sixth element (a storage view, always None since PyTorch 0.4).
	legacy bool
}

func newUnpickler(legacy bool) *unpickler {
	return &unpickler{storages: make(Storages), legacy: legacy}
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
		return Callable(RebuildTensor), nil
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		return Callable(rebuildParameter), nil
	}
	if module == "torch" {
		if class, ok, err := FindStorageClass(name); ok {
			return class, err
		}
	}
	return nil, fmt.Errorf("unsupported Python object %s.%s; only state dicts of tensors can be read (save model.state_dict(), not the model or other objects)", module, name)
}

// persistentLoad resolves a storage reference (see Storages.Resolve).
func (up *unpickler) persistentLoad(pid any) (any, error) {
	return up.storages.Resolve(pid, up.legacy)
}

// rebuildParameter replaces torch._utils._rebuild_parameter(data,
// requires_grad, backward_hooks), which wraps a tensor in nn.Parameter.
func rebuildParameter(args ...any) (any, error) {
	if len(args) == 0 {
		return nil, errors.New("_rebuild_parameter got no arguments")
	}
	ref, ok := args[0].(*View)
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
		ref, ok := it.value.(*View)
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
