//go:build !(linux && amd64)

package faults

import "errors"

// canTrace reports whether traceChild works on this platform: it reads
// syscall arguments from amd64 registers.
const canTrace = false

func traceChild(cmd childCommand, watch string, stop func(ev *event) bool) ([]event, childResult, error) {
	return nil, childResult{}, errors.New("tracing a child's syscalls needs linux/amd64")
}
