package faults

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"ckptbench/iox"
)

// under reports whether p is root or inside it.
func under(p, root string) bool {
	return p == root || strings.HasPrefix(p, root+"/")
}

// inTemp reports whether p lies in an entry of dir that iox.TempPath
// named.
func inTemp(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return false
	}
	first, _, _ := strings.Cut(rel, string(filepath.Separator))
	return iox.IsTemp(first)
}

// commitIndex returns the index of the successful rename onto dst, or -1.
func commitIndex(events []event, dst string) int {
	for i, e := range events {
		if e.kind == evRename && e.ok && e.path2 == dst {
			return i
		}
	}
	return -1
}

// auditSync checks the trace of a save that replaced the checkpoint at
// dst. It returns a summary and the problems found, which are breaches of
// these rules:
//   - the new checkpoint is written under an iox.TempPath name and
//     published by one rename onto dst;
//   - nothing of the old checkpoint changes before that rename;
//   - every file written, and every directory given new entries, is
//     fsynced after its last change and before the rename;
//   - the parent directory is fsynced after the rename.
func auditSync(events []event, dst string) (string, []string) {
	dir := filepath.Dir(dst)
	commit := commitIndex(events, dst)
	if commit < 0 {
		return "", []string{fmt.Sprintf("no rename onto %s was traced, so the checkpoint is not published atomically", dst)}
	}
	tmp := events[commit].path
	var problems []string
	if filepath.Dir(tmp) != dir || !iox.IsTemp(tmp) {
		problems = append(problems, fmt.Sprintf("the checkpoint is renamed from %s, which is not a name iox.TempPath makes in %s", tmp, dir))
	}

	files := map[string]bool{}   // files of the new checkpoint
	dirs := map[string]bool{}    // its directories
	dirty := map[string]bool{}   // written since their last fsync
	changed := map[string]bool{} // directories with entries added since their last fsync
	addEntry := func(p string) {
		if parent := filepath.Dir(p); parent != dir {
			changed[parent] = true
		}
	}
	for _, e := range events[:commit] {
		if !e.ok {
			continue
		}
		if e.kind != evSync && e.kind != evSyncAll && (under(e.path, dst) || under(e.path2, dst)) {
			problems = append(problems, fmt.Sprintf("%s changes the existing checkpoint before the commit", e))
		}
		switch e.kind {
		case evUnsupported:
			problems = append(problems, "the save uses io_uring, whose writes this audit cannot see")
		case evWrite:
			if under(e.path, tmp) {
				files[e.path], dirty[e.path] = true, true
			}
		case evCreate:
			if under(e.path, tmp) {
				files[e.path] = true
				addEntry(e.path)
			}
		case evMkdir:
			if under(e.path, tmp) {
				dirs[e.path] = true
				addEntry(e.path)
			}
		case evRename:
			if under(e.path2, tmp) {
				addEntry(e.path)
				addEntry(e.path2)
			}
		case evSync:
			delete(dirty, e.path)
			delete(changed, e.path)
		case evSyncAll:
			clear(dirty)
			clear(changed)
		}
	}
	for _, p := range sortedSet(dirty) {
		problems = append(problems, fmt.Sprintf("%s is written but not fsynced before the commit", p))
	}
	for _, p := range sortedSet(changed) {
		problems = append(problems, fmt.Sprintf("directory %s gets new entries but is not fsynced after them, before the commit", p))
	}

	parentSynced := false
	for _, e := range events[commit+1:] {
		if e.ok && (e.kind == evSync && e.path == dir || e.kind == evSyncAll) {
			parentSynced = true
			break
		}
	}
	if !parentSynced {
		problems = append(problems, fmt.Sprintf("the parent directory %s is not fsynced after the commit, so the rename can be lost in a power failure", dir))
	}
	summary := fmt.Sprintf("pass: %s and %s synced before the rename, the parent after it", count(len(files), "file", "files"), count(len(dirs), "directory", "directories"))
	return summary, problems
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func sortedSet(m map[string]bool) []string {
	var out []string
	for k, v := range m {
		if v {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
