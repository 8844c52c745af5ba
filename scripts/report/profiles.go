package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// profilesDir is the subdirectory of a results directory where
// scripts/profile.sh writes its profiles.
const profilesDir = "profiles"

// profileRows is how many of a profile's top functions the report shows.
const profileRows = 10

// Profile is one CPU profile as scripts/profile.sh writes it: "# key:
// value" header lines, then the text of `go tool pprof -top`.
type Profile struct {
	// Path is the file relative to the results directory.
	Path string
	// Header contains the "# key: value" lines: model, tensor-bytes, result
	// (the benchmark's result line), filter and timed-only among them.
	Header map[string]string
	// Total is the CPU time of the samples the top table covers, as
	// pprof prints it ("4.20s"), and TotalSeconds the same in seconds
	// (0 when the unit is unknown).
	Total        string
	TotalSeconds float64
	Rows         []ProfileRow
}

// ProfileRow is one function of the top table. Percentages are of
// Total. Flat counts the function's own samples, and cum adds its
// callees'.
type ProfileRow struct {
	FlatPct  string
	CumPct   string
	Function string
}

// profileOps maps each operation to its name in profile file names:
// <variant>-save.txt, <variant>-load-cold.txt, <variant>-load-warm.txt.
var profileOps = map[Op]string{opSave: "save", opCold: "load-cold", opWarm: "load-warm"}

// profileKey returns the file stem of v's profile of op, as
// scripts/profile.sh names it: the variant ID with "/" replaced by "-",
// then the operation ("t5x-gzip-save").
func profileKey(v Variant, op Op) string {
	return strings.ReplaceAll(v.String(), "/", "-") + "-" + profileOps[op]
}

var (
	topHeader  = regexp.MustCompile(`^\s*flat\s+flat%\s+sum%\s+cum\s+cum%\s*$`)
	totalLine  = regexp.MustCompile(`^Showing nodes accounting for .*, .* of (\S+) total`)
	headerLine = regexp.MustCompile(`^#\s*([a-z-]+):\s*(.*)$`)
)

// LoadProfiles reads every profile in <resultsDir>/profiles, keyed by file
// stem. A missing directory gives no profiles.
func LoadProfiles(resultsDir string) (map[string]*Profile, error) {
	profiles := map[string]*Profile{}
	files, err := filepath.Glob(filepath.Join(resultsDir, profilesDir, "*.txt"))
	if err != nil {
		return nil, err
	}
	for _, path := range files {
		stem := strings.TrimSuffix(filepath.Base(path), ".txt")
		if !isProfileName(stem) {
			continue
		}
		p, err := readProfile(path)
		if err != nil {
			return nil, err
		}
		p.Path = filepath.ToSlash(filepath.Join(profilesDir, filepath.Base(path)))
		profiles[stem] = p
	}
	return profiles, nil
}

func isProfileName(stem string) bool {
	for _, op := range profileOps {
		if strings.HasSuffix(stem, "-"+op) {
			return true
		}
	}
	return false
}

// readProfile parses one profile file.
func readProfile(path string) (*Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p := &Profile{Header: map[string]string{}}
	inTable := false
	scanner := bufio.NewScanner(f)
	for n := 1; scanner.Scan(); n++ {
		line := scanner.Text()
		switch {
		case inTable:
			if strings.TrimSpace(line) == "" {
				continue
			}
			row, err := parseProfileRow(line)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w; record the profile again with scripts/profile.sh or remove the file", path, n, err)
			}
			p.Rows = append(p.Rows, row)
		case headerLine.MatchString(line):
			m := headerLine.FindStringSubmatch(line)
			p.Header[m[1]] = strings.TrimSpace(m[2])
		case totalLine.MatchString(line):
			p.Total = totalLine.FindStringSubmatch(line)[1]
			p.TotalSeconds = pprofSeconds(p.Total)
		case topHeader.MatchString(line):
			inTable = true
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("read profile %s: %w", path, err)
	}
	if !inTable {
		return nil, fmt.Errorf("%s: no `go tool pprof -top` table (the line \"flat  flat%%   sum%%        cum   cum%%\" is missing); record the profile again with scripts/profile.sh or remove the file", path)
	}
	return p, nil
}

// parseProfileRow parses "  1.20s 35.29% 35.29%  1.50s 44.12%  pkg.Func".
// The function name may carry a suffix such as " (inline)".
func parseProfileRow(line string) (ProfileRow, error) {
	fields := strings.Fields(line)
	if len(fields) < 6 || !strings.HasSuffix(fields[1], "%") || !strings.HasSuffix(fields[4], "%") {
		return ProfileRow{}, fmt.Errorf("%q is not a row of flat, flat%%, sum%%, cum, cum%% and a function", line)
	}
	return ProfileRow{FlatPct: fields[1], CumPct: fields[4], Function: strings.Join(fields[5:], " ")}, nil
}

// pprofUnits are the time units pprof scales CPU samples to.
var pprofUnits = []struct {
	suffix  string
	seconds float64
}{
	// Longer suffixes first, so "ms" is not read as "s".
	{"mins", 60}, {"min", 60}, {"hrs", 3600}, {"hr", 3600},
	{"ns", 1e-9}, {"us", 1e-6}, {"µs", 1e-6}, {"ms", 1e-3}, {"s", 1},
}

// pprofSeconds converts a pprof duration such as "4.20s" or "150ms" to
// seconds, or returns 0 when it cannot.
func pprofSeconds(s string) float64 {
	for _, u := range pprofUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0
			}
			return v * u.seconds
		}
	}
	return 0
}

// TimedSeconds returns the wall time of the profiled benchmark's timed
// operations from its result line (iterations times ns/op), or 0.
func (p *Profile) TimedSeconds() float64 {
	fields := strings.Fields(p.Header["result"])
	if len(fields) < 4 {
		return 0
	}
	iterations, err := strconv.ParseFloat(fields[1], 64)
	if err != nil {
		return 0
	}
	for i := 3; i < len(fields); i++ {
		if fields[i] == "ns/op" {
			ns, err := strconv.ParseFloat(fields[i-1], 64)
			if err != nil {
				return 0
			}
			return iterations * ns / 1e9
		}
	}
	return 0
}

// Iterations returns the number of timed operations in the profiled
// benchmark's result line, or 0.
func (p *Profile) Iterations() int {
	fields := strings.Fields(p.Header["result"])
	if len(fields) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(fields[1])
	return n
}
