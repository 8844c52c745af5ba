package tensor

import (
	"errors"
	"fmt"
)

// StateDict is an ordered list of named tensors, the unit every format
// saves and loads, named after PyTorch's state_dict.
//
// A StateDict returned by a loader may own memory outside the Go heap
// (libtorch tensors, memory maps). Close releases it; the tensors' Data
// must not be used afterwards.
type StateDict struct {
	Tensors []*Tensor
	closers []func() error
}

// Add appends tensors to the state dict.
func (d *StateDict) Add(ts ...*Tensor) { d.Tensors = append(d.Tensors, ts...) }

// OnClose registers f to run, in reverse order of registration, on Close.
func (d *StateDict) OnClose(f func() error) { d.closers = append(d.closers, f) }

// Close releases the memory behind the tensors. It is safe to call twice.
func (d *StateDict) Close() error {
	var errs []error
	for i := len(d.closers) - 1; i >= 0; i-- {
		errs = append(errs, d.closers[i]())
	}
	d.closers = nil
	return errors.Join(errs...)
}

// Lookup returns the tensor with the given name, or nil.
func (d *StateDict) Lookup(name string) *Tensor {
	for _, t := range d.Tensors {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// NumBytes returns the total payload size of all tensors.
func (d *StateDict) NumBytes() int64 {
	var n int64
	for _, t := range d.Tensors {
		n += int64(len(t.Data))
	}
	return n
}

// Metas returns the metadata of every tensor, in order.
func (d *StateDict) Metas() []Meta {
	ms := make([]Meta, len(d.Tensors))
	for i, t := range d.Tensors {
		ms[i] = t.Meta
	}
	return ms
}

// Validate checks every tensor and rejects empty and duplicate names, the
// conditions every format relies on before it writes anything.
func (d *StateDict) Validate() error {
	if d == nil {
		return errors.New("the state dict is nil")
	}
	seen := make(map[string]bool, len(d.Tensors))
	for i, t := range d.Tensors {
		if t == nil {
			return fmt.Errorf("tensor #%d is nil", i)
		}
		if t.Name == "" {
			return fmt.Errorf("tensor #%d has an empty name", i)
		}
		if seen[t.Name] {
			return fmt.Errorf("tensor %q appears twice; names must be unique", t.Name)
		}
		seen[t.Name] = true
		if err := t.Validate(); err != nil {
			return err
		}
	}
	return nil
}
