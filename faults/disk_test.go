package faults

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts
// it when the test ends. It skips the test when mounting is not allowed.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := freshDir(t)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		t.Skipf("mounting a tmpfs on %s failed (%v); the file-system tests need root (CAP_SYS_ADMIN)", dir, err)
	}
	// Cleanups run last first, so this unmounts before t.TempDir's removal.
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	return dir
}

// remount changes the size or the flags of the tmpfs at dir.
func remount(t *testing.T, dir string, flags uintptr, data string) {
	t.Helper()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_REMOUNT|flags, data); err != nil {
		t.Fatalf("remount %s: %v", dir, err)
	}
}

// usedBytes returns the bytes in use on the file system of dir, which
// tmpfs counts in whole pages.
func usedBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

// roomyTmpfs is the size of the tmpfs that the tests start from, far
// more than any checkpoint here needs.
const roomyTmpfs = 64 << 20

// TestFullDisk saves the big model over the old checkpoint on a tmpfs
// with room for 10 %, 50 % and 95 % of the big checkpoint's pages. The
// save must fail with an error that names the path. It must leave the old
// checkpoint intact and nothing else.
func TestFullDisk(t *testing.T) {
	for _, v := range baseVariants(t) {
		t.Run(v.id, func(t *testing.T) {
			need := checkpointPages(t, v, "big")
			for _, percent := range []int64{10, 50, 95} {
				t.Run(fmt.Sprintf("%d%%", percent), func(t *testing.T) {
					dir := mountTmpfs(t, roomyTmpfs)
					dst := filepath.Join(dir, "ckpt")
					if err := v.format.Save(dst, stateDict("old")); err != nil {
						t.Fatal(err)
					}
					size := (usedBytes(t, dir) + need*percent/100) / 4096 * 4096
					remount(t, dir, 0, fmt.Sprintf("size=%d", size))
					err := v.format.Save(dst, stateDict("big"))
					checkFailedSave(t, v, fmt.Sprintf("disk-%d", percent), dir, dst, err, syscall.ENOSPC)
				})
			}
		})
	}
}

// checkpointPages returns the bytes that the checkpoint of the named state
// dict takes on a tmpfs, in whole pages.
func checkpointPages(t *testing.T, v variant, name string) int64 {
	t.Helper()
	dir := mountTmpfs(t, roomyTmpfs)
	before := usedBytes(t, dir)
	if err := v.format.Save(filepath.Join(dir, "ckpt"), stateDict(name)); err != nil {
		t.Fatal(err)
	}
	return usedBytes(t, dir) - before
}

// TestReadOnlyFileSystem saves over the old checkpoint on a tmpfs that
// was remounted read-only.
func TestReadOnlyFileSystem(t *testing.T) {
	for _, v := range baseVariants(t) {
		t.Run(v.id, func(t *testing.T) {
			dir := mountTmpfs(t, roomyTmpfs)
			dst := filepath.Join(dir, "ckpt")
			if err := v.format.Save(dst, stateDict("old")); err != nil {
				t.Fatal(err)
			}
			remount(t, dir, unix.MS_RDONLY, "")
			err := v.format.Save(dst, stateDict("new"))
			checkFailedSave(t, v, "disk-readonly", dir, dst, err, syscall.EROFS)
		})
	}
}

// checkFailedSave checks a save to dst that had to fail with errno, and
// records the outcome under fault.
func checkFailedSave(t *testing.T, v variant, fault, dir, dst string, err error, errno syscall.Errno) {
	t.Helper()
	var cell string
	switch {
	case err == nil:
		cell = "succeeds"
		t.Errorf("the save to %s succeeded, want it to fail with %v", dst, errno)
	case errors.Is(err, errno):
		cell = fmt.Sprintf("fails with %s", errnoName(errno))
	default:
		cell = "fails"
		t.Logf("the error does not wrap %s: %v", errnoName(errno), err)
	}
	if err != nil {
		if strings.Contains(err.Error(), dst) {
			cell += ", names the path"
		} else {
			t.Errorf("the error does not name %s: %v", dst, err)
		}
	}
	outcomes.record(t, fault, v.id, "save", cell)

	reply := loadAndMatch(v.format, dst, []string{"old", "new", "big"})
	if reply.Match != "old" {
		t.Errorf("after the failed save, %s loads as %s (%s), want the old checkpoint", dst, loadCell(reply), reply.Error)
	}
	outcomes.record(t, fault, v.id, "old checkpoint", loadCell(reply))
	left := leftovers(t, v, dir, "ckpt")
	if left != "none" {
		t.Errorf("the failed save left %s in %s", left, dir)
	}
	outcomes.record(t, fault, v.id, "leftovers", left)
}

func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.ENOSPC:
		return "ENOSPC"
	case syscall.EROFS:
		return "EROFS"
	}
	return e.Error()
}

// TestSaveOverUnrelatedDirectory saves to a path that is a directory
// with a user's file in it. Commit swaps the new checkpoint with what is
// at the path and removes the old entry, so a format that does not check
// first would delete the directory.
func TestSaveOverUnrelatedDirectory(t *testing.T) {
	for _, v := range baseVariants(t) {
		t.Run(v.id, func(t *testing.T) {
			dst := filepath.Join(freshDir(t), "ckpt")
			notes := filepath.Join(dst, "notes.txt")
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(notes, []byte("keep me"), 0o644); err != nil {
				t.Fatal(err)
			}
			c := newChecker(t, "disk-unrelated", v)
			err := v.format.Save(dst, stateDict("old"))
			cell := "rejected"
			switch {
			case err == nil:
				cell = "succeeds"
				c.fail("the save over the directory %s succeeded, want an error", dst)
			case strings.Contains(err.Error(), dst):
				cell += ", names the path"
			default:
				c.fail("the error does not name %s: %v", dst, err)
			}
			outcomes.record(t, "disk-unrelated", v.id, "save", cell)

			if b, err := os.ReadFile(notes); err != nil || string(b) != "keep me" {
				c.fail("the user's file %s is lost or changed: %q, %v", notes, b, err)
				outcomes.record(t, "disk-unrelated", v.id, "the directory", "user's file lost")
			} else {
				outcomes.record(t, "disk-unrelated", v.id, "the directory", "intact")
			}
			c.done()
		})
	}
}
