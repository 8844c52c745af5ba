//go:build linux && amd64

package faults

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// canTrace reports whether traceChild works on this platform.
const canTrace = true

// ptrace options: report syscall stops with bit 0x80 in the stop signal,
// follow every thread the child creates, and kill the child if the test
// process dies first.
const traceOptions = unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_EXITKILL

// atFDCWD is AT_FDCWD (-100) as a 64-bit register holds it.
const atFDCWD = uint64(0xffffffffffffff9c) // -100

// traceChild runs cmd under ptrace and reports each file-system call it
// makes on a path under watch to stop, at syscall entry, in the order the
// calls enter the kernel. When stop returns true, the call is skipped and
// the child killed with SIGKILL, as a crash at that instant would. It
// returns every event under watch, with ok set for calls that succeeded,
// and how the child ended.
//
// Every syscall of every thread stops the child twice, which slows it
// down by orders of magnitude, so traced children do little work.
func traceChild(cmd childCommand, watch string, stop func(ev *event) bool) ([]event, childResult, error) {
	// Every ptrace request must come from the thread that started the
	// child, which is its tracer.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	out, err := os.CreateTemp("", "faults-child-*.out")
	if err != nil {
		return nil, childResult{}, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	proc, err := os.StartProcess(cmd.argv[0], cmd.argv, &os.ProcAttr{
		Env:   cmd.env,
		Files: []*os.File{nil, out, out},
		Sys:   &syscall.SysProcAttr{Ptrace: true, Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		return nil, childResult{}, err
	}
	pid := proc.Pid
	proc.Release() // the loop below reaps the child, not os.Process.Wait

	tr := &tracer{pid: pid, watch: watch, stop: stop, threads: map[int]*threadState{pid: {started: true, pending: -1}}}
	status, err := tr.run()
	if err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return nil, childResult{}, err
	}
	output, _ := os.ReadFile(out.Name())
	return tr.events, childResult{status: status, output: output}, nil
}

// threadState is what the tracer keeps per traced thread.
type threadState struct {
	// started is set once the thread's first stop, the SIGSTOP that a
	// traced clone starts with, has been seen.
	started bool
	// inSyscall is set between a syscall's entry stop and its exit stop.
	inSyscall bool
	// pending is the index in events of the event whose exit is awaited,
	// or -1.
	pending int
	// creating is the path an open with O_CREAT or a mkdir is creating,
	// recorded as an event only when the call succeeds.
	creating     string
	creatingKind eventKind
}

type tracer struct {
	pid     int
	watch   string
	stop    func(*event) bool
	threads map[int]*threadState
	events  []event
	killed  bool
}

func (tr *tracer) run() (syscall.WaitStatus, error) {
	var ws syscall.WaitStatus
	// The child stops with SIGTRAP after its execve.
	if _, err := syscall.Wait4(tr.pid, &ws, syscall.WALL, nil); err != nil {
		return ws, fmt.Errorf("wait for the traced child: %w", err)
	}
	if !ws.Stopped() {
		return ws, fmt.Errorf("the traced child did not stop after exec (status %v)", ws)
	}
	if err := unix.PtraceSetOptions(tr.pid, traceOptions); err != nil {
		return ws, fmt.Errorf("ptrace set options: %w", err)
	}
	if err := syscall.PtraceSyscall(tr.pid, 0); err != nil {
		return ws, fmt.Errorf("ptrace syscall: %w", err)
	}

	var status syscall.WaitStatus
	leaderDone := false
	for !leaderDone || len(tr.threads) > 0 {
		tid, err := syscall.Wait4(-1, &ws, syscall.WALL, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if errors.Is(err, syscall.ECHILD) {
			break
		}
		if err != nil {
			return status, fmt.Errorf("wait for the traced child: %w", err)
		}
		if ws.Exited() || ws.Signaled() {
			delete(tr.threads, tid)
			if tid == tr.pid {
				status, leaderDone = ws, true
			}
			continue
		}
		if !ws.Stopped() {
			continue
		}
		th := tr.threads[tid]
		if th == nil {
			th = &threadState{pending: -1}
			tr.threads[tid] = th
		}
		sig := ws.StopSignal()
		deliver := 0
		switch {
		case sig == syscall.SIGTRAP|0x80:
			if tr.syscallStop(tid, th) {
				continue // killed: leave the thread stopped
			}
		case sig == syscall.SIGTRAP && ws.TrapCause() != 0:
			// A ptrace event (a new thread); nothing to deliver.
		case sig == syscall.SIGSTOP && !th.started:
			th.started = true
		default:
			deliver = int(sig)
		}
		// The thread may have died meanwhile (ESRCH); its exit comes next.
		_ = syscall.PtraceSyscall(tid, deliver)
	}
	return status, nil
}

// syscallStop handles one syscall entry or exit stop of thread tid and
// reports whether the child was killed.
func (tr *tracer) syscallStop(tid int, th *threadState) bool {
	var regs syscall.PtraceRegs
	if err := syscall.PtraceGetRegs(tid, &regs); err != nil {
		return false
	}
	if th.inSyscall {
		th.inSyscall = false
		ok := int64(regs.Rax) >= 0
		if th.pending >= 0 {
			tr.events[th.pending].ok = ok
			th.pending = -1
		}
		if th.creating != "" && ok {
			tr.events = append(tr.events, event{kind: th.creatingKind, path: th.creating, ok: true})
		}
		th.creating = ""
		return false
	}

	th.inSyscall = true
	if tr.killed {
		return false
	}
	ev, ok := tr.decode(&regs)
	if !ok {
		return false
	}
	if ev.kind == evCreate || ev.kind == evMkdir {
		if tr.watched(ev.path) {
			th.creating, th.creatingKind = ev.path, ev.kind
		}
		return false
	}
	if !tr.watched(ev.path) && !tr.watched(ev.path2) && ev.kind != evSyncAll {
		return false
	}

	tr.events = append(tr.events, ev)
	th.pending = len(tr.events) - 1
	if tr.stop != nil && tr.stop(&tr.events[th.pending]) {
		tr.events[th.pending].killed = true
		// Skip the call, then kill the whole thread group.
		regs.Orig_rax = ^uint64(0)
		_ = syscall.PtraceSetRegs(tid, &regs)
		unix.Kill(tr.pid, unix.SIGKILL)
		tr.killed = true
		return true
	}
	return false
}

func (tr *tracer) watched(p string) bool {
	return p != "" && (p == tr.watch || strings.HasPrefix(p, tr.watch+"/"))
}

// decode turns a syscall entry into an event, resolving file descriptors
// and relative paths to absolute paths. It returns false for calls that
// do not change or sync files.
func (tr *tracer) decode(r *syscall.PtraceRegs) (event, bool) {
	args := [6]uint64{r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9}
	fd := func(i int) string { return tr.fdPath(args[i]) }
	at := func(dirfd, p int) string { return tr.atPath(args[dirfd], args[p]) }
	cwd := func(p int) string { return tr.atPath(atFDCWD, args[p]) }
	switch r.Orig_rax {
	case unix.SYS_WRITE, unix.SYS_PWRITE64, unix.SYS_WRITEV, unix.SYS_PWRITEV, unix.SYS_PWRITEV2,
		unix.SYS_FTRUNCATE, unix.SYS_FALLOCATE, unix.SYS_SENDFILE:
		return event{kind: evWrite, path: fd(0)}, true
	case unix.SYS_COPY_FILE_RANGE:
		return event{kind: evWrite, path: fd(2)}, true
	case unix.SYS_TRUNCATE:
		return event{kind: evWrite, path: cwd(0)}, true
	case unix.SYS_FSYNC, unix.SYS_FDATASYNC:
		return event{kind: evSync, path: fd(0)}, true
	case unix.SYS_SYNC, unix.SYS_SYNCFS:
		return event{kind: evSyncAll}, true
	case unix.SYS_OPEN, unix.SYS_CREAT:
		if r.Orig_rax == unix.SYS_OPEN && args[1]&unix.O_CREAT == 0 {
			return event{}, false
		}
		return event{kind: evCreate, path: cwd(0)}, true
	case unix.SYS_OPENAT:
		if args[2]&unix.O_CREAT == 0 {
			return event{}, false
		}
		return event{kind: evCreate, path: at(0, 1)}, true
	case unix.SYS_MKDIR:
		return event{kind: evMkdir, path: cwd(0)}, true
	case unix.SYS_MKDIRAT:
		return event{kind: evMkdir, path: at(0, 1)}, true
	case unix.SYS_RENAME:
		return event{kind: evRename, path: cwd(0), path2: cwd(1)}, true
	case unix.SYS_RENAMEAT:
		return event{kind: evRename, path: at(0, 1), path2: at(2, 3)}, true
	case unix.SYS_RENAMEAT2:
		return event{kind: evRename, path: at(0, 1), path2: at(2, 3), flags: args[4]}, true
	case unix.SYS_UNLINK, unix.SYS_RMDIR:
		return event{kind: evRemove, path: cwd(0)}, true
	case unix.SYS_UNLINKAT:
		return event{kind: evRemove, path: at(0, 1)}, true
	case unix.SYS_IO_URING_SETUP:
		// Writes through io_uring bypass the syscalls traced here.
		return event{kind: evUnsupported, path: tr.watch}, true
	}
	return event{}, false
}

// fdPath returns the path that file descriptor fd of the child refers to.
func (tr *tracer) fdPath(fd uint64) string {
	p, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", tr.pid, int32(fd)))
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(p, " (deleted)")
}

// atPath resolves the path string at address addr in the child relative
// to directory file descriptor dirfd, as the *at syscalls do.
func (tr *tracer) atPath(dirfd, addr uint64) string {
	p := tr.readString(addr)
	if p == "" || filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	var dir string
	if dirfd == atFDCWD {
		dir, _ = os.Readlink(fmt.Sprintf("/proc/%d/cwd", tr.pid))
	} else {
		dir = tr.fdPath(dirfd)
	}
	return filepath.Join(dir, p)
}

// readString reads a NUL-terminated string of at most 4096 bytes (the
// kernel's PATH_MAX) from the child's memory.
func (tr *tracer) readString(addr uint64) string {
	f, err := os.Open("/proc/" + strconv.Itoa(tr.pid) + "/mem")
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, _ := f.ReadAt(buf, int64(addr))
	if i := bytes.IndexByte(buf[:n], 0); i >= 0 {
		return string(buf[:i])
	}
	return string(buf[:n])
}
