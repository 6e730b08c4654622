// Package cputime reads the CPU time of the running process, for the
// benchmarks: on a loaded machine a steadier figure than elapsed time.
package cputime

import "time"

// Process returns the user and system CPU time the process has used so
// far, its garbage collector's included, or 0 if the system does not say.
func Process() time.Duration { return process() }
