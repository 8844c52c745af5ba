package faults

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ckptbench/formats"
	"ckptbench/tensor"
)

// damage describes what a damage function did to a checkpoint.
type damage struct {
	// file is the damaged file, which errors must name.
	file string
	// tensor is set when the damaged file or byte range belongs to the
	// target tensor alone, so errors must name it too.
	tensor bool
	// silent is set when only a checksum can detect the damage, so a
	// Load without verification may return the damaged data.
	silent bool
}

// damageFunc damages the checkpoint c, a save of saved, in one way.
type damageFunc func(t *testing.T, c checkpoint, saved *tensor.StateDict) damage

// damages lists the damage tests by fault key, in table order.
var damages = []struct {
	fault string
	apply damageFunc
}{
	{"truncated", truncatePayload},
	{"deleted", deletePayload},
	{"renamed", renamePayload},
	{"bitflip", flipPayloadBit},
	{"swapped", swapPayloads},
	{"metadata", damageMetadata},
	{"index", damageIndex},
	{"dtype", changeDType},
	{"shape", changeShape},
	{"permission", lockPayload},
}

func truncatePayload(t *testing.T, c checkpoint, saved *tensor.StateDict) damage {
	if c.kind == dirLayout {
		chunk := c.chunkFile(t, target)
		info, err := os.Stat(chunk)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(chunk, info.Size()/2); err != nil {
			t.Fatal(err)
		}
		return damage{file: chunk, tensor: true}
	}
	data := saved.Lookup(target).Data
	if err := os.Truncate(c.path, int64(c.payloadOffset(t, data)+len(data)/2)); err != nil {
		t.Fatal(err)
	}
	// A zip's directory is at its end, so a cut loses every record's
	// name. A safetensors header still lists the tensor whose payload
	// the cut ends.
	return damage{file: c.path, tensor: c.kind == safetensorsLayout}
}

func deletePayload(t *testing.T, c checkpoint, _ *tensor.StateDict) damage {
	file, tensor := c.path, false
	if c.kind == dirLayout {
		file, tensor = c.chunkFile(t, target), true
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	return damage{file: file, tensor: tensor}
}

func renamePayload(t *testing.T, c checkpoint, _ *tensor.StateDict) damage {
	file, tensor := c.path, false
	if c.kind == dirLayout {
		file, tensor = c.chunkFile(t, target), true
	}
	if err := os.Rename(file, file+".renamed"); err != nil {
		t.Fatal(err)
	}
	return damage{file: file, tensor: tensor}
}

func flipPayloadBit(t *testing.T, c checkpoint, saved *tensor.StateDict) damage {
	if c.kind == dirLayout {
		chunk := c.chunkFile(t, target)
		info, err := os.Stat(chunk)
		if err != nil {
			t.Fatal(err)
		}
		flipBit(t, chunk, int(info.Size()/2))
		return damage{file: chunk, tensor: true, silent: true}
	}
	data := saved.Lookup(target).Data
	flipBit(t, c.path, c.payloadOffset(t, data)+len(data)/2)
	return damage{file: c.path, tensor: true, silent: true}
}

func swapPayloads(t *testing.T, c checkpoint, saved *tensor.StateDict) damage {
	if c.kind == dirLayout {
		a, b := c.chunkFile(t, target), c.chunkFile(t, twin)
		swapFiles(t, a, b)
		return damage{file: a, tensor: true, silent: true}
	}
	a, b := saved.Lookup(target).Data, saved.Lookup(twin).Data
	swapRanges(t, c.path, c.payloadOffset(t, a), c.payloadOffset(t, b), len(a))
	return damage{file: c.path, tensor: true, silent: true}
}

func damageMetadata(t *testing.T, c checkpoint, _ *tensor.StateDict) damage {
	switch c.kind {
	case dirLayout:
		zarray := filepath.Join(c.arrayDir(t, target), ".zarray")
		b := readFile(t, zarray)
		writeFile(t, zarray, b[:len(b)/2])
		return damage{file: zarray, tensor: true}
	case safetensorsLayout:
		// The tensor's shape becomes the invalid JSON x64,64].
		replaceAfter(t, c.path, []byte(`"`+target+`"`), []byte(`"shape":[`), []byte(`"shape":x`))
		return damage{file: c.path, tensor: true}
	default:
		// Invalid pickle opcodes right after the tensor's name in
		// data.pkl. The parser cannot tell whose entry they are in.
		b := readFile(t, c.path)
		at := bytes.Index(b, []byte(target))
		if at < 0 {
			t.Fatalf("%s does not contain the name %s", c.path, target)
		}
		copy(b[at+len(target):], []byte{0xff, 0xff, 0xff, 0xff})
		writeFile(t, c.path, b)
		return damage{file: c.path}
	}
}

func damageIndex(t *testing.T, c checkpoint, _ *tensor.StateDict) damage {
	switch c.kind {
	case dirLayout:
		index := c.indexFile(t)
		b := readFile(t, index)
		writeFile(t, index, b[:len(b)/2])
		return damage{file: index}
	case safetensorsLayout:
		// A header length of about 2^63 bytes.
		b := readFile(t, c.path)
		b[7] = 0x7f
		writeFile(t, c.path, b)
		return damage{file: c.path}
	default:
		// The end-of-central-directory signature, which zip readers
		// search for from the end of the file.
		b := readFile(t, c.path)
		at := bytes.LastIndex(b, []byte("PK\x05\x06"))
		if at < 0 {
			t.Fatalf("%s has no end-of-central-directory record", c.path)
		}
		b[at+3] = 0x07
		writeFile(t, c.path, b)
		return damage{file: c.path}
	}
}

func changeDType(t *testing.T, c checkpoint, _ *tensor.StateDict) damage {
	switch c.kind {
	case dirLayout:
		// int16 has float16's size, so the chunk still fits.
		zarray := filepath.Join(c.arrayDir(t, target), ".zarray")
		editJSON(t, zarray, func(m map[string]any) { m["dtype"] = "<i2" })
		return damage{file: zarray, tensor: true}
	case safetensorsLayout:
		editSafetensorsHeader(t, c.path, target, func(e map[string]any) { e["dtype"] = "BF16" })
		return damage{file: c.path, tensor: true, silent: true}
	default:
		// The storage class is pickled once and shared by every tensor.
		replaceAfter(t, c.path, []byte("data.pkl"), []byte("HalfStorage"), []byte("CharStorage"))
		return damage{file: c.path, silent: true}
	}
}

func changeShape(t *testing.T, c checkpoint, _ *tensor.StateDict) damage {
	switch c.kind {
	case dirLayout:
		zarray := filepath.Join(c.arrayDir(t, target), ".zarray")
		editJSON(t, zarray, func(m map[string]any) {
			m["shape"] = []int{32, 128}
			m["chunks"] = []int{32, 128}
		})
		return damage{file: zarray, tensor: true}
	case safetensorsLayout:
		editSafetensorsHeader(t, c.path, target, func(e map[string]any) { e["shape"] = []int{32, 128} })
		return damage{file: c.path, tensor: true, silent: true}
	default:
		// The pickled size tuple (64, 64), MARK BININT1 64 BININT1 64
		// TUPLE, becomes (32, 128).
		replaceAfter(t, c.path, []byte(target), []byte("(K@K@t"), []byte("(K K\x80t"))
		return damage{file: c.path, silent: true}
	}
}

func lockPayload(t *testing.T, c checkpoint, _ *tensor.StateDict) damage {
	file, tensor := c.path, false
	if c.kind == dirLayout {
		file, tensor = c.chunkFile(t, target), true
	}
	if err := os.Chmod(file, 0); err != nil {
		t.Fatal(err)
	}
	return damage{file: file, tensor: tensor}
}

// TestDamagedCheckpoint saves the old checkpoint with every variant,
// damages it in each way of damages, and checks what Load and Verify
// report.
func TestDamagedCheckpoint(t *testing.T) {
	for _, v := range testVariants(t) {
		t.Run(v.id, func(t *testing.T) {
			for _, d := range damages {
				t.Run(d.fault, func(t *testing.T) { testDamage(t, v, d.fault, d.apply) })
			}
		})
	}
}

func testDamage(t *testing.T, v variant, fault string, apply damageFunc) {
	dir := freshDir(t)
	path := filepath.Join(dir, "ckpt")
	saved := stateDict("old")
	if err := v.format.Save(path, saved); err != nil {
		t.Fatal(err)
	}
	c := detectLayout(t, path)
	if saved.Lookup(target) == nil || saved.Lookup(twin) == nil {
		t.Fatalf("the saved state dict lacks %s or %s", target, twin)
	}
	dm := apply(t, c, saved)

	// Root reads a file of mode 000, so as root the load runs in a child
	// process as nobody; any other user is already denied.
	asNobody := fault == "permission" && os.Geteuid() == 0
	if asNobody {
		// The user nobody must reach the checkpoint through the test's
		// directories, which t.TempDir creates with mode 0700.
		for d := dir; d != os.TempDir() && len(d) > len(os.TempDir()); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if c.kind == dirLayout {
			chmodTree(t, path)
		}
	}
	ck := newChecker(t, fault, v)
	run := func(op string) childReply {
		if asNobody {
			return runChild(t, childRequest{Op: op, Variant: v.id, Path: path, Match: []string{"old"}}, true)
		}
		if op == "verify" {
			var r childReply
			if err := verify(v.format, path); err != nil {
				r.Error = err.Error()
			}
			return r
		}
		return loadAndMatch(v.format, path, []string{"old"})
	}

	outcomes.record(t, fault, v.id, "Load", judge(ck, "Load", run("load"), dm, v.verifyOnLoad))
	_, isVerifier := v.format.(formats.Verifier)
	switch {
	case v.verifyOnLoad:
		outcomes.record(t, fault, v.id, "Verify", "as without +verify")
	case !isVerifier:
		outcomes.record(t, fault, v.id, "Verify", "no Verify")
	default:
		outcomes.record(t, fault, v.id, "Verify", judge(ck, "Verify", run("verify"), dm, true))
	}
	ck.done()
}

// chmodTree makes every directory under root, but no file, traversable
// by everyone, so only the damaged file is unreadable.
func chmodTree(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return os.Chmod(p, 0o755)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// judge checks the reply of a load or verify (what) of a damaged
// checkpoint against the requirements and returns the table cell. With
// mustDetect, even damage that only a checksum finds must fail.
func judge(c *checker, what string, r childReply, dm damage, mustDetect bool) string {
	c.t.Helper()
	if r.Error == "" {
		switch {
		case what == "Verify":
			c.fail("Verify accepted the damaged checkpoint")
			return "passes"
		case r.Match == "old":
			c.fail("Load returned the saved data bit for bit; the damage changed nothing that Load reads")
			return "loads the saved data"
		case !dm.silent || mustDetect:
			c.fail("Load returned damaged data without an error")
		}
		return "loads damaged data silently"
	}

	cell := "fails"
	if strings.Contains(r.Error, formats.ErrChecksum.Error()) {
		cell = "checksum mismatch"
	}
	namesFile := strings.Contains(r.Error, dm.file)
	namesTensor := strings.Contains(r.Error, target)
	switch {
	case namesTensor && namesFile:
		cell += ", names tensor and file"
	case namesFile:
		cell += ", names file"
	case namesTensor:
		cell += ", names tensor"
	default:
		cell += ", names neither"
	}
	if !namesFile {
		c.fail("%s error does not name the damaged file %s: %s", what, dm.file, r.Error)
	}
	if dm.tensor && !namesTensor {
		c.fail("%s error does not name the tensor %s, whose payload was damaged: %s", what, target, r.Error)
	}
	return cell
}
