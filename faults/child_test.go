package faults

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"ckptbench/formats"
	"ckptbench/tensor"
	"ckptbench/tensor/tensortest"
)

// childEnv is the environment variable that makes this test binary run
// one childRequest, given as JSON, instead of its tests.
const childEnv = "CKPTBENCH_FAULTS_CHILD"

// childRequest is one operation for a child process.
type childRequest struct {
	// Op is "save" (save the state dict Model at Path), "load" or
	// "verify" (of Path).
	Op      string `json:"op"`
	Variant string `json:"variant"`
	Path    string `json:"path"`
	Model   string `json:"model,omitempty"`
	// Match lists the state dicts a loaded checkpoint is compared with.
	Match []string `json:"match,omitempty"`
}

// childReply is what a child prints for a load or verify.
type childReply struct {
	Error string `json:"error,omitempty"`
	// Match is the name of the state dict in Match that the loaded one
	// equals, "other" for none, or "" when the load failed.
	Match string `json:"match,omitempty"`
}

// command returns the command that runs req in a child process of exe.
func (req childRequest) command(exe string) childCommand {
	b, err := json.Marshal(req)
	if err != nil {
		panic(err)
	}
	return childCommand{
		argv: []string{exe, "-test.run=^$"},
		env:  append(os.Environ(), childEnv+"="+string(b)),
	}
}

// runChildRequest runs the request in the environment variable childEnv
// and returns the exit code: 0 when the operation ran (a load or verify
// reports its error in the reply), 3 when a save failed.
func runChildRequest(spec string) int {
	var req childRequest
	if err := json.Unmarshal([]byte(spec), &req); err != nil {
		fmt.Fprintf(os.Stderr, "faults child: invalid %s: %v\n", childEnv, err)
		return 2
	}
	v, err := findVariant(req.Variant)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults child:", err)
		return 2
	}
	var reply childReply
	switch req.Op {
	case "save":
		if err := v.format.Save(req.Path, stateDict(req.Model)); err != nil {
			fmt.Fprintln(os.Stderr, "faults child: save:", err)
			return 3
		}
		return 0
	case "load":
		reply = loadAndMatch(v.format, req.Path, req.Match)
	case "verify":
		if err := verify(v.format, req.Path); err != nil {
			reply.Error = err.Error()
		}
	default:
		fmt.Fprintf(os.Stderr, "faults child: unknown operation %q\n", req.Op)
		return 2
	}
	if err := json.NewEncoder(os.Stdout).Encode(reply); err != nil {
		return 2
	}
	return 0
}

// loadAndMatch loads path with f and names the state dict in candidates
// that the result equals.
func loadAndMatch(f formats.Format, path string, candidates []string) childReply {
	sd, err := safeLoad(f, path)
	if err != nil {
		return childReply{Error: err.Error()}
	}
	defer sd.Close()
	for _, name := range candidates {
		if tensortest.Diff(stateDict(name), sd) == "" {
			return childReply{Match: name}
		}
	}
	return childReply{Match: "other"}
}

// safeLoad loads path with f, turning a panic in the calling goroutine
// into an error.
func safeLoad(f formats.Format, path string) (sd *tensor.StateDict, err error) {
	defer func() {
		if p := recover(); p != nil {
			sd, err = nil, fmt.Errorf("panic: %v", p)
		}
	}()
	return f.Load(path)
}

// verify runs f's Verify on path, turning a panic into an error.
func verify(f formats.Format, path string) (err error) {
	v, ok := f.(formats.Verifier)
	if !ok {
		return errors.New("the format has no Verify")
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return v.Verify(path)
}

// runChild runs req in a child process, as the user nobody when
// asNobody is set, and returns its reply.
func runChild(t *testing.T, req childRequest, asNobody bool) childReply {
	t.Helper()
	exe := os.Args[0]
	if asNobody {
		exe = nobodyBinary(t)
	}
	c := req.command(exe)
	cmd := exec.Command(c.argv[0], c.argv[1:]...)
	cmd.Env = c.env
	if asNobody {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyID, Gid: nobodyID}}
	}
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child %s %s of %s: %v\n%s", req.Op, req.Variant, req.Path, err, stderr.b)
	}
	var reply childReply
	if err := json.Unmarshal(out, &reply); err != nil {
		t.Fatalf("child %s %s: invalid reply %q: %v", req.Op, req.Variant, out, err)
	}
	return reply
}

// nobodyID is the uid and gid of the user nobody on Debian.
const nobodyID = 65534

var nobodyCopy struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// nobodyBinary returns a copy of this test binary that the user nobody
// can execute: go test builds it in a directory only root may enter.
func nobodyBinary(t *testing.T) string {
	t.Helper()
	c := &nobodyCopy
	c.once.Do(func() {
		if c.dir, c.err = os.MkdirTemp("", "faults-nobody-"); c.err != nil {
			return
		}
		if c.err = os.Chmod(c.dir, 0o755); c.err != nil {
			return
		}
		c.path = filepath.Join(c.dir, "faults.test")
		c.err = copyFile(os.Args[0], c.path, 0o755)
	})
	if c.err != nil {
		t.Fatalf("copy the test binary for the user nobody: %v", c.err)
	}
	return c.path
}

// removeNobodyBinary removes the copy that nobodyBinary made, if any.
func removeNobodyBinary() {
	if nobodyCopy.dir != "" {
		os.RemoveAll(nobodyCopy.dir)
	}
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// limitedBuffer keeps the first 64 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
