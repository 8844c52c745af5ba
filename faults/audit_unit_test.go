package faults

import (
	"strings"
	"testing"
)

// TestAuditSync feeds auditSync hand-made traces of a directory
// checkpoint saved to /d/ckpt, one per mistake it must catch.
func TestAuditSync(t *testing.T) {
	const (
		dst  = "/d/ckpt"
		tmp  = "/d/ckpt.tmp-1-a"
		file = tmp + "/arr/0"
	)
	ok := func(kind eventKind, path string) event { return event{kind: kind, path: path, ok: true} }
	commit := event{kind: evRename, path: tmp, path2: dst, ok: true}
	good := []event{
		ok(evMkdir, tmp),
		ok(evMkdir, tmp+"/arr"),
		ok(evCreate, file),
		ok(evWrite, file),
		ok(evSync, file),
		ok(evSync, tmp+"/arr"),
		ok(evSync, tmp),
		commit,
		ok(evSync, "/d"),
	}
	without := func(i int) []event {
		return append(append([]event{}, good[:i]...), good[i+1:]...)
	}
	cases := []struct {
		name   string
		events []event
		want   string // in a problem; "" for none
	}{
		{"good", good, ""},
		{"file not synced", without(4), file + " is written but not fsynced"},
		{"array directory not synced", without(5), "directory " + tmp + "/arr gets new entries"},
		{"top directory not synced", without(6), "directory " + tmp + " gets new entries"},
		{"parent not synced after", good[:8], "parent directory /d is not fsynced after the commit"},
		{"no commit", without(7), "no rename onto " + dst},
		{"in-place write", append([]event{ok(evWrite, dst+"/arr/0")}, good...), "changes the existing checkpoint"},
		{"sync before the write", append(without(4)[:3], ok(evSync, file), ok(evWrite, file), ok(evSync, tmp+"/arr"), ok(evSync, tmp), commit, ok(evSync, "/d")), file + " is written but not fsynced"},
		{"syncfs covers all", append(good[:4:4], ok(evSyncAll, ""), commit, ok(evSync, "/d")), ""},
		{"not a temporary name", []event{ok(evCreate, "/d/new"), ok(evWrite, "/d/new"), ok(evSync, "/d/new"), {kind: evRename, path: "/d/new", path2: dst, ok: true}, ok(evSync, "/d")}, "not a name iox.TempPath makes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, problems := auditSync(c.events, dst)
			text := strings.Join(problems, "\n")
			switch {
			case c.want == "" && len(problems) > 0:
				t.Errorf("problems for a correct save:\n%s", text)
			case c.want != "" && !strings.Contains(text, c.want):
				t.Errorf("problems %q do not contain %q", text, c.want)
			}
		})
	}
}
