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
	return statusField("VmHWM:")
}

// RSS returns VmRSS, the current resident set size in bytes.
func RSS() (int64, error) {
	return statusField("VmRSS:")
}

func statusField(key string) (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
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
			return 0, fmt.Errorf("/proc/self/status: unexpected %s line %q", key, line)
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		return kb << 10, err
	}
	return 0, fmt.Errorf("/proc/self/status has no %s line", key)
}
