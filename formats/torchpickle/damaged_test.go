package torchpickle

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rewriteZip copies the records of the zip archive src into a new
// archive, passing each through edit, which may change its name, method
// or contents, or drop it by returning false.
func rewriteZip(t *testing.T, src []byte, edit func(h *zip.FileHeader, data *[]byte) bool) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(src), int64(len(src)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, zf := range zr.File {
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		h := &zip.FileHeader{Name: zf.Name, Method: zip.Store}
		if !edit(h, &data) {
			continue
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestRejectsDamagedFiles(t *testing.T) {
	zipped, err := os.ReadFile("../../testdata/torchpickle/tied.bin")
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := os.ReadFile("../../testdata/torchpickle/legacy.bin")
	if err != nil {
		t.Fatal(err)
	}
	keep := func(*zip.FileHeader, *[]byte) bool { return true }
	for _, tc := range []struct {
		name    string
		content []byte
		want    string
	}{
		{"empty", nil, "too short to be a torch.save file"},
		{"text", []byte("hello, world\n"), "neither a zip archive nor a pickle"},
		{"truncated zip", zipped[:len(zipped)/2], "not a valid zip archive"},
		{"truncated legacy", legacy[:len(legacy)-20], "runs past the end"},
		{"legacy without storages", legacy[:300], "ends before its STOP opcode"},
		{"renamed archive folder", rewriteZip(t, zipped, func(h *zip.FileHeader, _ *[]byte) bool {
			h.Name = "archive/" + h.Name[strings.Index(h.Name, "/")+1:]
			return true
		}), ""},
		{"big-endian", rewriteZip(t, zipped, func(h *zip.FileHeader, data *[]byte) bool {
			if strings.HasSuffix(h.Name, "/byteorder") {
				*data = []byte("big")
			}
			return true
		}), `byte order to "big"`},
		{"compressed record", rewriteZip(t, zipped, func(h *zip.FileHeader, _ *[]byte) bool {
			if strings.HasSuffix(h.Name, "/data/0") {
				h.Method = zip.Deflate
			}
			return true
		}), "record tied/data/0 is compressed"},
		{"missing record", rewriteZip(t, zipped, func(h *zip.FileHeader, _ *[]byte) bool {
			return !strings.HasSuffix(h.Name, "/data/0")
		}), "record tied/data/0 of storage 0 is missing"},
		{"short record", rewriteZip(t, zipped, func(h *zip.FileHeader, data *[]byte) bool {
			if strings.HasSuffix(h.Name, "/data/0") {
				*data = (*data)[:10]
			}
			return true
		}), "record tied/data/0 is 10 bytes, but storage 0 needs 80"},
		{"no data.pkl", rewriteZip(t, zipped, func(h *zip.FileHeader, _ *[]byte) bool {
			return !strings.HasSuffix(h.Name, "data.pkl")
		}), "no data.pkl record"},
		{"garbage pickle", rewriteZip(t, zipped, func(h *zip.FileHeader, data *[]byte) bool {
			if strings.HasSuffix(h.Name, "data.pkl") {
				*data = []byte("\x80\x02\xff")
			}
			return true
		}), "unknown opcode 0xff"},
		{"huge pickle length", rewriteZip(t, zipped, func(h *zip.FileHeader, data *[]byte) bool {
			if strings.HasSuffix(h.Name, "data.pkl") {
				// BINBYTES8 claiming 2^60 bytes.
				*data = []byte("\x80\x02\x8e\x00\x00\x00\x00\x00\x00\x00\x10")
			}
			return true
		}), "declares a 1152921504606846976-byte value"},
		{"empty LONG1", rewriteZip(t, zipped, func(h *zip.FileHeader, data *[]byte) bool {
			if strings.HasSuffix(h.Name, "data.pkl") {
				*data = []byte("\x80\x02\x8a\x00.")
			}
			return true
		}), "the pickle is malformed"},
		{"not a dict", rewriteZip(t, zipped, func(h *zip.FileHeader, data *[]byte) bool {
			if strings.HasSuffix(h.Name, "data.pkl") {
				*data = []byte("\x80\x02K\x07.")
			}
			return true
		}), "contains an int, not a state dict"},
		{"arbitrary class", rewriteZip(t, zipped, func(h *zip.FileHeader, data *[]byte) bool {
			if strings.HasSuffix(h.Name, "data.pkl") {
				*data = []byte("\x80\x02cos\nsystem\n.")
			}
			return true
		}), "unsupported Python object os.system"},
		{"unmodified", rewriteZip(t, zipped, keep), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pytorch_model.bin")
			if err := os.WriteFile(path, tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			sd, err := ReadFile(path)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(sd.Tensors) != 4 {
					t.Errorf("read %d tensors, want 4", len(sd.Tensors))
				}
				sd.Close()
				return
			}
			if err == nil {
				sd.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

// FuzzRead checks that no input makes the reader panic or read outside
// its storages. Seeds are the files under testdata/torchpickle.
func FuzzRead(f *testing.F) {
	seeds, err := filepath.Glob("../../testdata/torchpickle/*.bin")
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata/torchpickle: %v", err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sd, err := read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		defer sd.Close()
		for _, tt := range sd.Tensors {
			if err := tt.Validate(); err != nil {
				t.Fatalf("read accepted an invalid tensor: %v", err)
			}
		}
	})
}
