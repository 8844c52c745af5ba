package formats

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestJoinProblemsNone(t *testing.T) {
	if err := JoinProblems([]error{nil, nil}); err != nil {
		t.Errorf("JoinProblems of no problems = %v, want nil", err)
	}
}

func TestJoinProblemsCapsLines(t *testing.T) {
	var errs []error
	for i := range MaxListed + 5 {
		errs = append(errs, fmt.Errorf("tensor %d: bad", i))
	}
	errs[MaxListed+3] = fmt.Errorf("tensor late: %w", ErrChecksum)
	err := JoinProblems(errs)

	lines := strings.Split(err.Error(), "\n")
	if len(lines) != MaxListed+1 {
		t.Fatalf("%d lines, want %d:\n%v", len(lines), MaxListed+1, err)
	}
	if want := "(and 5 more problems of this checkpoint)"; lines[MaxListed] != want {
		t.Errorf("last line %q, want %q", lines[MaxListed], want)
	}
	if !errors.Is(err, ErrChecksum) {
		t.Error("errors.Is does not find a problem past the listed ones")
	}
}

func TestJoinProblemsShort(t *testing.T) {
	err := JoinProblems([]error{errors.New("a"), nil, errors.New("b")})
	if got := err.Error(); got != "a\nb" {
		t.Errorf("message %q, want %q", got, "a\nb")
	}
}
