//go:build torch

package device

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"ckptbench/device/libtorch"
	"ckptbench/tensor"
)

// Current returns cuda:0 when libtorch detects a CUDA GPU, else the CPU.
func Current() Device {
	// gotch's CUDA.IsAvailable reads libtorch's int result as a Go bool,
	// which is not a valid bool when the call fails, so count the devices
	// and check the error instead.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	libtorch.ClearError()
	count := gotch.CUDA.DeviceCount()
	if err := ts.TorchErr(); err != nil {
		d := CPU
		d.Note = fmt.Sprintf("libtorch failed to count CUDA devices: %v", libtorch.Clean(err))
		return d
	}
	if count <= 0 {
		d := CPU
		d.Note = "libtorch detects no CUDA GPU"
		return d
	}
	return Device{Index: 0, Name: gpuName()}
}

// Place copies every tensor of sd to d and waits until the copies are
// complete. On the CPU it does nothing, because sd is already in host
// memory. The caller releases the placement; sd stays valid either way.
//
// NOTE: the CUDA path compiles but has not run on a GPU yet.
func Place(d Device, sd *tensor.StateDict) (*Placement, error) {
	if !d.IsCUDA() {
		return &Placement{Device: d}, nil
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	libtorch.ClearError()

	target := gotch.CudaBuilder(uint(d.Index))
	var copies []*ts.Tensor
	p := &Placement{Device: d}
	p.release = func() error {
		var errs []error
		for _, x := range copies {
			errs = append(errs, x.Drop())
		}
		copies = nil
		return errors.Join(errs...)
	}
	for _, t := range sd.Tensors {
		host, err := libtorch.Borrow(t)
		if err != nil {
			p.Release()
			return nil, fmt.Errorf("device: place on %s: %w", d, err)
		}
		onDevice, err := host.Tensor.To(target, false)
		host.Drop()
		if err != nil {
			p.Release()
			return nil, fmt.Errorf("device: place tensor %q on %s: %w", t.Name, d, libtorch.Clean(err))
		}
		copies = append(copies, onDevice)
		p.NumBytes += int64(len(t.Data))
	}
	if err := ts.CudaSynchronize(d.Index); err != nil {
		p.Release()
		return nil, fmt.Errorf("device: synchronize %s: %w", d, libtorch.Clean(err))
	}
	return p, nil
}

// gpuName returns the product name of CUDA device 0, asking nvidia-smi
// first and the driver's /proc files second.
//
// NOTE: nvidia-smi numbers GPUs in PCI bus order, CUDA fastest first unless
// CUDA_DEVICE_ORDER=PCI_BUS_ID, so on machines with mixed GPUs the name
// can belong to another GPU than cuda:0. CUDA_VISIBLE_DEVICES is honored.
func gpuName() string {
	id := "0"
	if visible := os.Getenv("CUDA_VISIBLE_DEVICES"); visible != "" {
		id = strings.TrimSpace(strings.Split(visible, ",")[0])
	}
	out, err := exec.Command("nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", id).Output()
	if err == nil {
		if name := strings.TrimSpace(string(out)); name != "" {
			return name
		}
	}
	// Without nvidia-smi, trust the driver's list only when it has one GPU.
	infos, _ := filepath.Glob("/proc/driver/nvidia/gpus/*/information")
	if len(infos) == 1 {
		if name := procModel(infos[0]); name != "" {
			return name
		}
	}
	return "unknown GPU"
}

// procModel returns the "Model:" field of a /proc/driver/nvidia GPU file.
func procModel(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "Model:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
