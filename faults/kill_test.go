package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"ckptbench/iox"
)

// freshDir returns a new empty directory with symbolic links resolved, so
// its paths compare equal to the ones the kernel reports.
func freshDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// killPoint is an instant of a save at which TestKilledSave kills it.
type killPoint struct {
	fault string
	// stop reports whether to kill before the call ev of a save to dst,
	// the n-th call (from 1) of its kind into a temporary entry.
	// committed is set once the rename onto dst has run.
	stop func(ev *event, n int, dst string, committed bool) bool
	// committed is whether the new checkpoint is published at the kill.
	committed bool
}

// killPoints returns the kill points of a save whose dry run made the
// given number of writes into its temporary entry.
func killPoints(writes int) []killPoint {
	nthWrite := func(k int) func(*event, int, string, bool) bool {
		return func(ev *event, n int, _ string, _ bool) bool { return ev.kind == evWrite && n == k }
	}
	commit := func(ev *event, _ int, dst string, _ bool) bool { return ev.kind == evRename && ev.path2 == dst }
	cleanup := func(ev *event, _ int, _ string, committed bool) bool { return ev.kind == evRemove && committed }
	return []killPoint{
		{"kill-first", nthWrite(1), false},
		{"kill-middle", nthWrite((writes + 1) / 2), false},
		{"kill-last", nthWrite(writes), false},
		{"kill-commit", commit, false},
		{"kill-cleanup", cleanup, true},
	}
}

// TestKilledSave traces a save over an existing checkpoint in a child
// process, audits its fsyncs, then kills it at each killPoint and checks
// what a crash there leaves behind.
func TestKilledSave(t *testing.T) {
	if !canTrace {
		t.Skip("the crash tests trace syscalls with ptrace, which this test implements for linux/amd64 only")
	}
	for _, v := range baseVariants(t) {
		t.Run(v.id, func(t *testing.T) { testKilledSave(t, v) })
	}
}

func testKilledSave(t *testing.T, v variant) {
	dir := freshDir(t)
	dst := filepath.Join(dir, "ckpt")
	if err := v.format.Save(dst, stateDict("old")); err != nil {
		t.Fatal(err)
	}
	save := childRequest{Op: "save", Variant: v.id, Path: dst, Model: "new"}
	events, res, err := traceChild(save.command(os.Args[0]), dir, nil)
	if err != nil {
		t.Fatalf("trace the save: %v", err)
	}
	if !res.status.Exited() || res.status.ExitStatus() != 0 {
		t.Fatalf("traced save of %s ended with %v:\n%s", dst, res.status, res.output)
	}
	summary, problems := auditSync(events, dst)
	if len(problems) > 0 {
		summary = "FAIL: " + strings.Join(problems, "; ")
		t.Errorf("the save is not durable:\n  %s\ntrace:\n%s", strings.Join(problems, "\n  "), traceText(events))
	}
	outcomes.record(t, "sync", v.id, "fsync audit", summary)

	writes := 0
	for _, e := range events {
		if e.kind == evWrite && inTemp(e.path, dir) {
			writes++
		}
	}
	if writes == 0 {
		t.Fatalf("the traced save wrote nothing into a temporary entry of %s:\n%s", dir, traceText(events))
	}
	for _, kp := range killPoints(writes) {
		t.Run(kp.fault, func(t *testing.T) { testKillPoint(t, v, kp) })
	}
}

// testKillPoint kills a save over the old checkpoint at kp and checks the
// checkpoint path, the leftovers and a later save.
func testKillPoint(t *testing.T, v variant, kp killPoint) {
	dir := freshDir(t)
	dst := filepath.Join(dir, "ckpt")
	if err := v.format.Save(dst, stateDict("old")); err != nil {
		t.Fatal(err)
	}
	counts := map[eventKind]int{}
	committed := false
	stop := func(ev *event) bool {
		if inTemp(ev.path, dir) {
			counts[ev.kind]++
		}
		kill := kp.stop(ev, counts[ev.kind], dst, committed)
		if ev.kind == evRename && ev.path2 == dst {
			committed = true // the rename runs unless killed here
		}
		return kill
	}
	save := childRequest{Op: "save", Variant: v.id, Path: dst, Model: "new"}
	events, res, err := traceChild(save.command(os.Args[0]), dir, stop)
	if err != nil {
		t.Fatalf("trace the save: %v", err)
	}
	if !res.status.Signaled() || res.status.Signal() != syscall.SIGKILL {
		t.Fatalf("the save was not killed at %s; it ended with %v:\n%s\ntrace:\n%s", kp.fault, res.status, res.output, traceText(events))
	}

	want := "old"
	if kp.committed {
		want = "new"
	}
	reply := runChild(t, childRequest{Op: "load", Variant: v.id, Path: dst, Match: []string{"old", "new"}}, false)
	cell := loadCell(reply)
	if reply.Match != want {
		t.Errorf("after the kill, %s loads as %s, want the %s checkpoint bit for bit", dst, cell, want)
	}
	outcomes.record(t, kp.fault, v.id, "checkpoint path", cell)
	outcomes.record(t, kp.fault, v.id, "leftovers", leftovers(t, v, dir, "ckpt"))

	if err := v.format.Save(dst, stateDict("new")); err != nil {
		t.Fatalf("a save after the kill failed: %v", err)
	}
	if reply := runChild(t, childRequest{Op: "load", Variant: v.id, Path: dst, Match: []string{"new"}}, false); reply.Match != "new" {
		t.Errorf("after a save that follows the kill, %s loads as %s, want the new checkpoint", dst, loadCell(reply))
	}
}

// loadCell describes a load's outcome for the table.
func loadCell(r childReply) string {
	switch r.Match {
	case "":
		return "load fails"
	case "other":
		return "loads other data"
	}
	return r.Match + ", bit for bit"
}

// leftovers checks every entry of dir but keep, which a killed or failed
// save left: it must be a temporary entry (iox.IsTemp) that either fails
// to load or loads as one of the complete checkpoints. It returns their
// description for the table.
func leftovers(t *testing.T, v variant, dir string, keep ...string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var cells []string
	for _, e := range entries {
		if slices.Contains(keep, e.Name()) {
			continue
		}
		if !iox.IsTemp(e.Name()) {
			t.Errorf("%s is left in %s; iox.IsTemp does not recognize it as the leftover of a save", e.Name(), dir)
			cells = append(cells, "unrecognized "+e.Name())
			continue
		}
		reply := runChild(t, childRequest{Op: "load", Variant: v.id, Path: filepath.Join(dir, e.Name()), Match: []string{"old", "new", "big"}}, false)
		switch reply.Match {
		case "":
			cells = append(cells, "temp, load fails")
		case "other":
			t.Errorf("the leftover %s loads as a checkpoint that is neither the old nor the new one", e.Name())
			cells = append(cells, "temp, loads other data")
		default:
			cells = append(cells, "temp, complete "+reply.Match+" checkpoint")
		}
	}
	if len(cells) == 0 {
		return "none"
	}
	slices.Sort(cells)
	return strings.Join(cells, "; ")
}

// traceText formats a trace for an error message.
func traceText(events []event) string {
	var b strings.Builder
	for i, e := range events {
		fmt.Fprintf(&b, "  %3d %s\n", i, e)
	}
	return b.String()
}
