package device

import (
	"testing"

	"ckptbench/model"
	"ckptbench/tensor"
)

func TestString(t *testing.T) {
	for _, c := range []struct {
		d    Device
		want string
	}{
		{CPU, "cpu"},
		{Device{Index: -1, Note: "no GPU"}, "cpu"},
		{Device{Index: 0, Name: "NVIDIA H200"}, "cuda:0 (NVIDIA H200)"},
		{Device{Index: 3, Name: "NVIDIA A100-SXM4-80GB"}, "cuda:3 (NVIDIA A100-SXM4-80GB)"},
	} {
		if got := c.d.String(); got != c.want {
			t.Errorf("%+v.String() = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestCurrentOnThisMachine(t *testing.T) {
	d := Current()
	t.Logf("device: %s (%s)", d, d.Note)
	if d.IsCUDA() {
		if d.Name == "" {
			t.Errorf("Current() = %+v: a GPU without a name", d)
		}
		return
	}
	if d.String() != "cpu" {
		t.Errorf("Current().String() = %q, want cpu", d)
	}
	if d.Note == "" {
		t.Error("Current() is the CPU but its Note does not say why")
	}
}

func TestPlaceOnCPU(t *testing.T) {
	sd := model.Synthetic(model.Tiny.Config, tensor.Float16, 1)
	p, err := Place(CPU, sd)
	if err != nil {
		t.Fatalf("Place(cpu): %v", err)
	}
	if p.NumBytes != 0 {
		t.Errorf("Place(cpu) copied %d bytes, want none", p.NumBytes)
	}
	if err := p.Release(); err != nil {
		t.Errorf("Release: %v", err)
	}
	if err := p.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
}
