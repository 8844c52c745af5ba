// Package libtorch converts between the suite's core tensors and libtorch
// tensors held through gotch (github.com/sugarme/gotch v0.9.1), copying no
// payloads. Borrow lends a core tensor's payload to libtorch, and View
// exposes a libtorch CPU tensor's memory as a core tensor. Clean turns
// libtorch's error text into short Go errors.
//
// Everything but this comment needs the torch build tag and a libtorch
// that scripts/gotch/setup.sh configured; without the tag the package is
// empty, so builds with CGO_ENABLED=0 still succeed.
//
// libtorch keeps its last error per OS thread, and gotch reads it in a
// second cgo call after the failing one. Callers therefore run every
// sequence of gotch calls with runtime.LockOSThread held; the functions
// here lock the thread themselves as well.
package libtorch
