// Package cputime reads the CPU time of the running process, for the
// benchmarks: on a loaded machine a steadier figure than elapsed time.
package cputime

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Process returns the user and system CPU time the process has used so
// far, its garbage collector's included, or 0 if the system does not say.
func Process() time.Duration { return process() }

// Of returns the user and system CPU time process pid (a server a test
// started) has used so far, from /proc (Linux; 0 elsewhere), in clock
// ticks of 10 ms.
func Of(pid int) time.Duration {
	dt, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(dt[bytes.LastIndexByte(dt, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
