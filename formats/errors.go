package formats

import (
	"fmt"
	"strings"
)

// MaxListed is how many problems an error from JoinProblems spells out.
const MaxListed = 8

// JoinProblems joins the problems that a check such as Verify found into
// one error, or returns nil when there are none. Its message lists the
// first MaxListed, one per line, and counts the rest, so that a checkpoint
// that lost a whole directory does not print hundreds of lines.
// errors.Is and errors.As see every problem.
func JoinProblems(errs []error) error {
	var found problems
	for _, err := range errs {
		if err != nil {
			found = append(found, err)
		}
	}
	if len(found) == 0 {
		return nil
	}
	return found
}

// problems is the error that JoinProblems returns.
type problems []error

func (p problems) Error() string {
	var b strings.Builder
	for i, err := range p[:min(len(p), MaxListed)] {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(err.Error())
	}
	if n := len(p) - MaxListed; n > 0 {
		fmt.Fprintf(&b, "\n(and %d more problems of this checkpoint)", n)
	}
	return b.String()
}

func (p problems) Unwrap() []error { return p }
