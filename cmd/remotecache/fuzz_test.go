package main

import (
	"testing"
)

// FuzzParseLocation: any argument parses or is refused, never panics, and
// a location that parses prints (String) as an argument that parses back
// to it.
//
//	go test -run '^$' -fuzz FuzzParseLocation -fuzztime 1m .
func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{
		"oci:dir", "oci:/a:b/c:v1", "oci:C:\\cache:tag", "registry:localhost:5000/team/cache:main",
		"registry:h/r@sha256:00", "s3:bucket", "s3:bucket/ci/:main;pr-1", "s3:b/p:q/r", "azblob:c/ci:a;b",
		"azblob:", "s3:b:", "registry:h/r:", "tar:x", "", ":", "oci::",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := parseLocation(s)
		if err != nil {
			return
		}
		again, err := parseLocation(l.String())
		if err != nil {
			t.Fatalf("%q parsed as %+v, whose String %q does not parse: %v", s, l, l.String(), err)
		}
		if again != l {
			t.Fatalf("%q parsed as %+v; its String %q parses as %+v", s, l, l.String(), again)
		}
	})
}

// FuzzParseSizeAndAge: --max-size and --max-age values parse or are
// refused, never panic, and what parses is not negative.
//
//	go test -run '^$' -fuzz FuzzParseSizeAndAge -fuzztime 1m .
func FuzzParseSizeAndAge(f *testing.F) {
	for _, s := range []string{"5GB", "2GiB", "500", "1.5 MB", "0", "30d", "720h", "NaNd", "Infd", "1e9d", "-1", "9999999999999TB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := parseSize(s); err == nil && n < 0 {
			t.Fatalf("parseSize(%q) = %d", s, n)
		}
		if d, err := parseAge(s); err == nil && d < 0 && s[0] != '-' {
			t.Fatalf("parseAge(%q) = %v", s, d)
		}
	})
}
