package iox

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCommitReplacesDirectory(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "ckpt")
	for i, payload := range []string{"old", "new"} {
		tmp := TempPath(dst)
		if !IsTemp(tmp) {
			t.Fatalf("IsTemp(%q) = false", tmp)
		}
		if err := os.Mkdir(tmp, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, "data"), []byte(payload), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := Commit(tmp, dst); err != nil {
			t.Fatalf("commit #%d: %v", i, err)
		}
		got, err := os.ReadFile(filepath.Join(dst, "data"))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != payload {
			t.Errorf("after commit #%d, data = %q, want %q", i, got, payload)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("commit left %d entries in the parent, want only ckpt", len(entries))
	}
}

func TestIsTemp(t *testing.T) {
	for name, want := range map[string]bool{
		"ckpt.tmp-12-abc":          true,
		"/a/b/ckpt.old-xyz":        true,
		"ckpt":                     false,
		".tmp-12":                  false,
		"model.safetensors":        false,
		"/x/checkpoint_1000.tmp-1": true,
	} {
		if got := IsTemp(name); got != want {
			t.Errorf("IsTemp(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestUsageAndDropCache(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, 1000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, bytes, err := Usage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if files != 2 || bytes != 2000 {
		t.Errorf("Usage = %d files, %d bytes; want 2 and 2000", files, bytes)
	}
	if err := DropCache(dir); err != nil {
		t.Errorf("DropCache: %v", err)
	}
	if err := DropCache(filepath.Join(dir, "missing")); err == nil {
		t.Error("DropCache of a missing path returned nil")
	}
}
