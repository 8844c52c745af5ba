// Package pyenv finds the llama-venv Python that interop tests run, so
// every Go test that checks a format against the real TensorStore, torch
// or safetensors finds it the same way.
package pyenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// RequireEnv is the environment variable that turns a missing llama-venv
// from a skip into a failure. `make test` sets it, so CI cannot pass
// without running the interop tests.
const RequireEnv = "CKPTBENCH_REQUIRE_PYTHON"

// Root returns the repository root, found from this source file's path.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Python returns the path of llama-venv's python3. The venv is
// $LLAMA_VENV when set, else llama-venv in the repository root. When it
// is missing, the test is skipped with a message saying how to create it,
// or fails when CKPTBENCH_REQUIRE_PYTHON is set.
func Python(tb testing.TB) string {
	tb.Helper()
	venv := os.Getenv("LLAMA_VENV")
	if venv == "" {
		venv = filepath.Join(Root(), "llama-venv")
	}
	py := filepath.Join(venv, "bin", "python3")
	if _, err := os.Stat(py); err != nil {
		msg := "llama-venv not found at " + venv + "; run `make venv` (or `make test`, which creates it)"
		if os.Getenv(RequireEnv) != "" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return py
}

// Run runs a Python script from scripts/ with llama-venv's interpreter
// and returns its standard output; on failure it fails the test with the
// script's standard error.
func Run(tb testing.TB, script string, args ...string) []byte {
	tb.Helper()
	py := Python(tb)
	cmd := exec.Command(py, append([]string{filepath.Join(Root(), "scripts", script)}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", script, args, err, stderr.String())
	}
	return out
}

// limitedBuffer keeps the last 16 KiB written to it: enough of a Python
// traceback to diagnose a failure without flooding the test log.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.b = append(l.b, p...)
	if over := len(l.b) - 16<<10; over > 0 {
		l.b = l.b[over:]
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
