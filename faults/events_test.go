package faults

import (
	"fmt"
	"syscall"
)

// eventKind classifies the file-system calls that traceChild records.
type eventKind int

const (
	evWrite       eventKind = iota // write, pwrite, truncate, fallocate: a file's data changes
	evSync                         // fsync or fdatasync of a file or directory
	evSyncAll                      // sync or syncfs
	evCreate                       // open with O_CREAT that succeeded
	evMkdir                        // mkdir that succeeded
	evRename                       // rename, renameat, renameat2
	evRemove                       // unlink, unlinkat, rmdir
	evUnsupported                  // io_uring, whose writes the trace cannot see
)

func (k eventKind) String() string {
	return [...]string{"write", "sync", "sync-all", "create", "mkdir", "rename", "remove", "io_uring"}[k]
}

// event is one file-system call of a traced child.
type event struct {
	kind eventKind
	// path is the file or directory the call acts on; path2 is a rename's
	// destination. Both are absolute.
	path, path2 string
	flags       uint64 // renameat2's flags
	ok          bool   // the call succeeded
	killed      bool   // the child was killed instead of making the call
}

func (e event) String() string {
	s := fmt.Sprintf("%s %s", e.kind, e.path)
	if e.path2 != "" {
		s += " -> " + e.path2
	}
	if e.killed {
		s += " (killed here)"
	} else if !e.ok {
		s += " (failed)"
	}
	return s
}

// childCommand is how a child process of this test binary is started.
type childCommand struct {
	argv, env []string
}

// childResult is how a child process ended and what it printed.
type childResult struct {
	status syscall.WaitStatus
	output []byte
}
