package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// ResetPeakRSS resets the kernel's record of this process's peak resident
// set size (VmHWM) to the current size, so the next PeakRSS covers only
// what happens in between. It needs Linux 4.0 or later.
func ResetPeakRSS() error {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// PeakRSS returns VmHWM, the peak resident set size in bytes since the
// process started or since the last ResetPeakRSS.
func PeakRSS() (int64, error) {
	return kBField("/proc/self/status", "VmHWM:")
}

// RSS returns VmRSS, the current resident set size in bytes.
func RSS() (int64, error) {
	return kBField("/proc/self/status", "VmRSS:")
}

// kBField returns the value of the "key N kB" line of a /proc file such
// as /proc/self/status or /proc/meminfo, in bytes.
func kBField(file, key string) (int64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte(key)) {
			continue
		}
		f := bytes.Fields(line[len(key):])
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("%s: unexpected %s line %q", file, key, line)
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		return kb << 10, err
	}
	return 0, fmt.Errorf("%s has no %s line", file, key)
}
