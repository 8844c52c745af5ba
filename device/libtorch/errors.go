//go:build torch

package libtorch

import (
	"errors"
	"strings"

	"github.com/sugarme/gotch/ts"
)

// ClearError discards a libtorch error that an earlier call left unread on
// the calling OS thread, so the next check reports only the next call's
// error. The caller must hold runtime.LockOSThread.
func ClearError() { _ = ts.TorchErr() }

// Clean shortens an error returned by gotch to libtorch's own message.
// gotch appends a Go stack trace to every libtorch error, and libtorch
// adds a C++ backtrace after "Exception raised from". Neither helps the
// user of a checkpoint tool. Other errors are returned unchanged.
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
