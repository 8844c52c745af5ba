package faults

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite the cells of docs/faults.md for the variants that ran")

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChildRequest(spec))
	}
	flag.Parse()
	unmount := useTmpfs()
	code := m.Run()
	removeNobodyBinary()
	unmount()
	if err := outcomes.reconcile(docPath, *update); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// useTmpfs mounts a tmpfs and makes it the temporary directory of the
// tests and their children. Each save fsyncs every file and directory,
// which on the virtual disk of a 2-core VM made the crash tests take 30 s
// instead of 3 s. fsync costs nothing on tmpfs, and SIGKILL leaves the
// same files behind on either. Without the privilege to mount, the tests
// run in the default temporary directory. It returns the function that
// undoes it.
func useTmpfs() func() {
	dir, err := os.MkdirTemp("", "faults-")
	if err != nil {
		return func() {}
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1g,mode=1777"); err != nil {
		fmt.Fprintf(os.Stderr, "faults: mounting a tmpfs failed (%v), so the tests write to %s, which is slower\n", err, os.TempDir())
		os.Remove(dir)
		return func() {}
	}
	old, had := os.LookupEnv("TMPDIR")
	os.Setenv("TMPDIR", dir)
	return func() {
		if had {
			os.Setenv("TMPDIR", old)
		} else {
			os.Unsetenv("TMPDIR")
		}
		if err := unix.Unmount(dir, 0); err != nil {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
		os.Remove(dir)
	}
}
