package tensor

import (
	"strings"
	"testing"
)

func TestValidateRejectsBadStateDicts(t *testing.T) {
	var nilDict *StateDict
	short := New("w", Float16, 2, 2)
	short.Data = short.Data[:3]
	for _, tc := range []struct {
		name string
		sd   *StateDict
		want string
	}{
		{"nil", nilDict, "nil"},
		{"empty name", &StateDict{Tensors: []*Tensor{New("", Float16, 1)}}, "empty name"},
		{"duplicate", &StateDict{Tensors: []*Tensor{New("a", Float16, 1), New("a", Float32, 1)}}, "appears twice"},
		{"short payload", &StateDict{Tensors: []*Tensor{short}}, "payload is 3 bytes"},
	} {
		err := tc.sd.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate() = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestParseDTypeNames(t *testing.T) {
	for s, want := range map[string]DType{"float16": Float16, "torch.bfloat16": BFloat16, "half": Float16, "float": Float32} {
		if got, err := ParseDType(s); err != nil || got != want {
			t.Errorf("ParseDType(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := ParseDType("float8"); err == nil {
		t.Error("ParseDType(float8) returned no error")
	}
}
