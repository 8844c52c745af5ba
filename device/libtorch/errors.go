//go:build torch

package libtorch

import (
	"errors"
	"strings"

	"github.com/sugarme/gotch/ts"
)

// ClearError discards a libtorch error left on the calling OS thread by
// an earlier call whose error nobody read, so that the next check reports
// only what the next call did. The caller must hold runtime.LockOSThread.
func ClearError() { _ = ts.TorchErr() }

// Clean shortens an error returned by gotch to libtorch's own message.
// gotch appends a Go stack trace to every libtorch error, and libtorch
// appends a C++ backtrace after "Exception raised from"; neither helps the
// user of a checkpoint tool. Errors that do not come from libtorch are
// returned unchanged.
func Clean(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	i := strings.Index(msg, "Libtorch API Error: ")
	if i < 0 {
		return err
	}
	prefix := msg[:i]
	msg = msg[i+len("Libtorch API Error: "):]
	if j := strings.Index(msg, "\nException raised from"); j >= 0 {
		msg = msg[:j]
	}
	if j := strings.Index(msg, "\ngoroutine "); j >= 0 {
		msg = msg[:j]
	}
	return errors.New(prefix + "libtorch: " + strings.TrimSpace(msg))
}
