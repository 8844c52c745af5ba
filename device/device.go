// Package device describes where the benchmarks keep tensors (the CPU, or
// a CUDA GPU that libtorch detects) and places a loaded state dict there.
// A load on a GPU machine thus ends only when every byte is on the GPU.
//
// Without the torch build tag, or when libtorch detects no GPU, the device
// is the CPU, where a loaded state dict already is.
package device

import "fmt"

// Device is a location for tensors: the CPU or one CUDA GPU.
type Device struct {
	// Index is the CUDA device ordinal, or -1 for the CPU.
	Index int
	// Name is the GPU's product name, such as "NVIDIA H200"; empty for
	// the CPU.
	Name string
	// Note is the reason the device is the CPU, for logs; empty for GPUs.
	Note string
}

// CPU is the host.
var CPU = Device{Index: -1}

// IsCUDA reports whether d is a CUDA GPU.
func (d Device) IsCUDA() bool { return d.Index >= 0 }

// String returns "cpu", or "cuda:N (name)" for a GPU: the value of the
// device: line in benchmark output.
func (d Device) String() string {
	if !d.IsCUDA() {
		return "cpu"
	}
	return fmt.Sprintf("cuda:%d (%s)", d.Index, d.Name)
}

// Placement is a state dict's copy on a device, kept until Release. On the
// CPU there is no copy: the state dict itself is the placed data.
type Placement struct {
	Device Device
	// NumBytes is the number of payload bytes copied to the device.
	NumBytes int64
	release  func() error
}

// Release frees the device copy. It is safe to call twice.
func (p *Placement) Release() error {
	if p == nil || p.release == nil {
		return nil
	}
	err := p.release()
	p.release = nil
	return err
}
