package iox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckParentMissing(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "missing")
	err := CheckParent(filepath.Join(parent, "ckpt"))
	if err == nil || !strings.Contains(err.Error(), parent+" does not exist") {
		t.Errorf("CheckParent = %v, want an error naming %s", err, parent)
	}
}

func TestCheckParentFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := CheckParent(filepath.Join(file, "ckpt"))
	if err == nil || !strings.Contains(err.Error(), file+" is not a directory") {
		t.Errorf("CheckParent = %v, want an error saying %s is not a directory", err, file)
	}
}

func TestCheckReplaceableNewPath(t *testing.T) {
	dir := t.TempDir()
	accept := func(string) error { return nil }
	if err := CheckReplaceable(filepath.Join(dir, "new"), "test", "index", accept); err != nil {
		t.Errorf("a new path in an existing directory: %v", err)
	}
	if err := CheckReplaceable(filepath.Join(dir, "no", "new"), "test", "index", accept); err == nil {
		t.Error("a path in a missing directory was accepted")
	}
}
