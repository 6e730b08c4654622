package main

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/errors"
)

// humanBytes is n in B, KiB, MiB, GiB or TiB.
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	unit := "B"
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if f < 1024 {
			break
		}
		f /= 1024
		unit = u
	}
	return fmt.Sprintf("%.1f %s", f, unit)
}

// plural is "1 thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

var longDigest = regexp.MustCompile(`(sha256:[0-9a-f]{12})[0-9a-f]{52}`)

// shortDigest shortens the sha256 digests in s to 12 hex digits.
func shortDigest(s string) string { return longDigest.ReplaceAllString(s, "$1") }

// sizeUnits are the units parseSize takes: SI units are powers of 1000,
// IEC units powers of 1024, as their names say.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

var sizePattern = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)$`)

// parseSize parses a size: a number of bytes, or a number with a unit
// (5GB = 5,000,000,000 bytes, 5GiB = 5×2³⁰; case does not matter).
func parseSize(s string) (int64, error) {
	m := sizePattern.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, errors.Errorf("%q: not a size (want a number of bytes, or one with a unit: 500MB, 5GB, 2GiB)", s)
	}
	unit, ok := sizeUnits[strings.ToLower(m[2])]
	if !ok {
		return 0, errors.Errorf("%q: unknown unit %q (want B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, m[2])
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil || n*float64(unit) >= math.MaxInt64 {
		return 0, errors.Errorf("%q: too large", s)
	}
	return int64(n * float64(unit)), nil
}

// parseAge parses a duration as Go writes them (720h, 90m), or a number of
// days (30d).
func parseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err == nil && n >= 0 && n < math.MaxInt64/float64(24*time.Hour) {
			return time.Duration(n * float64(24*time.Hour)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.Errorf("%q: not a duration (want 720h, 90m or 30d)", s)
	}
	return d, nil
}
