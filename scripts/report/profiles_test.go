package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadProfilesFromFixture(t *testing.T) {
	profiles, err := LoadProfiles(targetsRun)
	if err != nil {
		t.Fatal(err)
	}
	if len(profiles) != 2 {
		t.Fatalf("%d profiles, want t5x-gzip-save and t5x-gzip-load-cold", len(profiles))
	}
	p := profiles[profileKey(t5xGzip, opSave)]
	if p == nil {
		t.Fatalf("no profile under %q", profileKey(t5xGzip, opSave))
	}
	if p.Path != "profiles/t5x-gzip-save.txt" {
		t.Errorf("path %q", p.Path)
	}
	if got := p.Header["model"]; got != "tiny_llama-1layers" {
		t.Errorf("model %q, want tiny_llama-1layers", got)
	}
	if p.Total != "1.56s" || !near(p.TotalSeconds, 1.56) {
		t.Errorf("total %q (%g s), want 1.56s", p.Total, p.TotalSeconds)
	}
	if len(p.Rows) != 15 {
		t.Errorf("%d rows, want the 15 of -nodecount=15", len(p.Rows))
	}
	want := ProfileRow{FlatPct: "8.97%", CumPct: "8.97%", Function: "internal/runtime/atomic.(*Uint32).CompareAndSwap (inline)"}
	if len(p.Rows) > 3 && p.Rows[3] != want {
		t.Errorf("row 4 %+v, want %+v", p.Rows[3], want)
	}
	if n := p.Iterations(); n != 100 {
		t.Errorf("iterations %d, want 100", n)
	}
	if s := p.TimedSeconds(); !near(s, 100*100933183/1e9) {
		t.Errorf("timed seconds %g, want 100 × 100933183 ns", s)
	}
}

func TestProfileKeyMatchesScriptNames(t *testing.T) {
	for _, tc := range []struct {
		v    Variant
		op   Op
		want string
	}{
		{t5xGzip, opSave, "t5x-gzip-save"},
		{t5xRaw, opCold, "t5x-raw-load-cold"},
		{Variant{Format: "zarr", Codec: "raw", Verify: "load"}, opWarm, "zarr-raw+verify-load-warm"},
	} {
		if got := profileKey(tc.v, tc.op); got != tc.want {
			t.Errorf("profileKey(%s, %s) = %q, want %q", tc.v, tc.op, got, tc.want)
		}
	}
}

func writeProfileFile(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, profilesDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, profilesDir, "t5x-gzip-save.txt"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestProfileWithoutTopTable(t *testing.T) {
	dir := writeProfileFile(t, "# profile: t5x/gzip save\nfailed to fetch any source profiles\n")
	_, err := LoadProfiles(dir)
	if err == nil || !strings.Contains(err.Error(), "t5x-gzip-save.txt: no `go tool pprof -top` table") {
		t.Errorf("error %v, want one naming the file and the missing table", err)
	}
}

func TestProfileWithBadRow(t *testing.T) {
	dir := writeProfileFile(t, "      flat  flat%   sum%        cum   cum%\n 1s 50% 50% 1s 50% main.f\n 1s half\n")
	_, err := LoadProfiles(dir)
	if err == nil || !strings.Contains(err.Error(), "t5x-gzip-save.txt:3:") || !strings.Contains(err.Error(), "scripts/profile.sh") {
		t.Errorf("error %v, want one naming file:line and the fix", err)
	}
}

func TestProfileWithoutSamples(t *testing.T) {
	dir := writeProfileFile(t, "Showing nodes accounting for 0, 0% of 0 total\n      flat  flat%   sum%        cum   cum%\n")
	profiles, err := LoadProfiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	writeProfileTop(&b, profiles["t5x-gzip-save"])
	if !strings.Contains(b.String(), "The profile has no samples.") {
		t.Errorf("output does not say the profile is empty:\n%s", b.String())
	}
}

func TestOtherFilesInProfilesAreIgnored(t *testing.T) {
	dir := writeProfileFile(t, "      flat  flat%   sum%        cum   cum%\n")
	if err := os.WriteFile(filepath.Join(dir, profilesDir, "README.txt"), []byte("not a profile\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	profiles, err := LoadProfiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(profiles) != 1 {
		t.Errorf("%d profiles, want 1", len(profiles))
	}
}

func TestBusyCoresOnlyForTimedSamples(t *testing.T) {
	p := &Profile{
		Path:         "profiles/t5x-gzip-save.txt",
		Header:       map[string]string{"result": "BenchmarkSave/format=t5x/codec=gzip/model=m-2 3 2000000000 ns/op", "timed-only": "yes"},
		Total:        "9s",
		TotalSeconds: 9,
		Rows:         []ProfileRow{{FlatPct: "40%", CumPct: "40%", Function: "compress/flate.(*compressor).deflate"}},
	}
	var b strings.Builder
	writeProfileTop(&b, p)
	// 9 s of samples over 3 saves of 2 s.
	if !strings.Contains(b.String(), "1.50 cores busy on average") {
		t.Errorf("output lacks the busy cores:\n%s", b.String())
	}
	p.Header["timed-only"] = "no"
	b.Reset()
	writeProfileTop(&b, p)
	if strings.Contains(b.String(), "cores busy") {
		t.Errorf("busy cores given for samples outside the timed region:\n%s", b.String())
	}
}

func TestPprofSeconds(t *testing.T) {
	for in, want := range map[string]float64{"1740ms": 1.74, "4.20s": 4.2, "2.5mins": 150, "300us": 3e-4, "1hrs": 3600, "12": 0, "x s": 0} {
		if got := pprofSeconds(in); !near(got, want) && !(want == 0 && got == 0) {
			t.Errorf("pprofSeconds(%q) = %g, want %g", in, got, want)
		}
	}
}
