package remotecache_test

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/buildcache/remotecache"
)

// The config decoder (configjson.go) is unexported;
// export_internal_test.go hands it to these tests.
var (
	decodeConfig     = remotecache.DecodeConfigForTest
	decodeConfigInto = remotecache.DecodeConfigIntoForTest
)

// cjBase is a config to decode others into: encoding/json decodes into
// the elements a slice has (and has room for) in place, and into an
// existing *LayerAnnotations.
const cjBase = `{"layers":[{"blob":"sha256:aa","parent":-1,"annotations":{"mediaType":"m","diffID":"sha256:dd","size":7,"createdAt":"2020-01-01T00:00:00+01:00"}},{"blob":"sha256:bb"},{"blob":"sha256:cc","parent":1}],` +
	`"records":[{"layers":[{"layer":1,"createdAt":"2021-02-03T04:05:06.7Z"},{"layer":2,"createdAt":"2021-02-03T04:05:06Z"}],"chains":[{"layers":[0,1,2],"createdAt":"2022-01-01T00:00:00Z"}],"digest":"sha256:r0","inputs":[[{"selector":"/a","link":1},{"link":2}],null,[]]},` +
	`{"digest":"sha256:r1","inputs":[[{"link":0}]]},{"digest":"sha256:r2"}]}`

// cjCheck decodes data with encoding/json and with decodeConfig, into a
// new value and into cjBase's, and requires the same outcome.
func cjCheck(t *testing.T, data []byte) {
	t.Helper()
	var want remotecache.CacheConfig
	werr := json.Unmarshal(data, &want)
	got, gerr := decodeConfig(data)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("input %.300q:\nencoding/json error: %v\ndecodeConfig error:  %v", data, werr, gerr)
	}
	if gerr != nil {
		if !strings.Contains(gerr.Error(), "offset ") {
			t.Fatalf("input %.300q: error without an offset: %v", data, gerr)
		}
	} else if !reflect.DeepEqual(&want, got) {
		t.Fatalf("input %.300q:\nencoding/json: %#v\ndecodeConfig:  %#v", data, want, *got)
	}

	// Into existing values, and into slices with room as Parse makes them.
	into := func(what string, want, got *remotecache.CacheConfig) {
		t.Helper()
		werr := json.Unmarshal(data, want)
		gerr := decodeConfigInto(data, got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("input %.300q into %s:\nencoding/json error: %v\ndecodeConfigInto error: %v", data, what, werr, gerr)
		}
		if gerr == nil && !reflect.DeepEqual(want, got) {
			t.Fatalf("input %.300q into %s:\nencoding/json:    %#v\ndecodeConfigInto: %#v", data, what, *want, *got)
		}
	}
	var wantInto, gotInto remotecache.CacheConfig
	if err := json.Unmarshal([]byte(cjBase), &wantInto); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(cjBase), &gotInto); err != nil {
		t.Fatal(err)
	}
	into("base", &wantInto, &gotInto)
	room := func() *remotecache.CacheConfig {
		return &remotecache.CacheConfig{Layers: make([]remotecache.CacheLayer, 0, 2), Records: make([]remotecache.CacheRecord, 0, 2)}
	}
	into("room", room(), room())
}

// cjTricky are handmade inputs for the table test and the fuzz corpus.
var cjTricky = []string{
	``,
	` `,
	`null`,
	` null `,
	`nul`,
	`nullx`,
	`{}`,
	` {} `,
	`{}x`,
	`{} {}`,
	`[]`,
	`"x"`,
	`1`,
	`true`,
	`{`,
	`{"layers"`,
	`{"layers":`,
	`{"layers":[`,
	`{"layers":[]`,
	`{"layers":[],}`,
	`{,}`,
	`{"layers":null}`,
	`{"layers":[]}`,
	`{"layers":{}}`,
	`{"layers":"x"}`,
	`{"layers":1}`,
	`{"layers":true}`,
	`{"layers":[null]}`,
	`{"layers":[null,{"blob":"b"}]}`,
	`{"layers":[1]}`,
	`{"layers":[[]]}`,
	`{"layers":[{}],"records":[{}]}`,
	`{"layers":[{"blob":"sha256:x","parent":-1}]}`,
	`{"layers":[{"parent":0}]}`,
	`{"layers":[{"parent":-0}]}`,
	`{"layers":[{"parent":01}]}`,
	`{"layers":[{"parent":1.0}]}`,
	`{"layers":[{"parent":1e2}]}`,
	`{"layers":[{"parent":1E+2}]}`,
	`{"layers":[{"parent":-}]}`,
	`{"layers":[{"parent":"1"}]}`,
	`{"layers":[{"parent":null}]}`,
	`{"layers":[{"parent":9223372036854775807}]}`,
	`{"layers":[{"parent":9223372036854775808}]}`,
	`{"layers":[{"parent":-9223372036854775808}]}`,
	`{"layers":[{"parent":-9223372036854775809}]}`,
	`{"layers":[{"parent":18446744073709551616}]}`,
	`{"layers":[{"parent":99999999999999999999999}]}`,
	`{"layers":[{"parent":true}]}`,
	`{"layers":[{"parent":{}}]}`,
	`{"layers":[{"blob":null}]}`,
	`{"layers":[{"blob":1}]}`,
	`{"layers":[{"blob":"a","blob":"b"}]}`,
	`{"layers":[{"blob":"a\"b\\c\/d\b\f\n\r\t\u0041\u00e9\ud83d\ude00"}]}`,
	`{"layers":[{"blob":"\ud800"}]}`,
	`{"layers":[{"blob":"\ud800\u0041"}]}`,
	`{"layers":[{"blob":"\udc00\ud800"}]}`,
	`{"layers":[{"blob":"\u12"}]}`,
	`{"layers":[{"blob":"\x"}]}`,
	"{\"layers\":[{\"blob\":\"\xff\xfe\"}]}",
	"{\"layers\":[{\"blob\":\"\xed\xa0\x80\"}]}",
	"{\"layers\":[{\"blob\":\"\xe2\x80\xa8 \xe2\x80\xa9 <>& \x7f\"}]}",
	"{\"layers\":[{\"blob\":\"a\x01b\"}]}",
	"{\"layers\":[{\"blob\":\"\t\"}]}",
	`{"layers":[{"annotations":null}]}`,
	`{"layers":[{"annotations":{}}]}`,
	`{"layers":[{"annotations":[]}]}`,
	`{"layers":[{"annotations":"x"}]}`,
	`{"layers":[{"annotations":{"mediaType":"m","diffID":"d","size":-3,"createdAt":"2024-02-29T23:59:59.123456789-07:30"}}]}`,
	`{"layers":[{"annotations":{"mediaType":"m"},"annotations":{"size":4}}]}`,
	`{"layers":[{"annotations":{"mediaType":"m"},"annotations":null,"annotations":{"size":4}}]}`,
	`{"layers":[{"annotations":{"size":1.5}}]}`,
	`{"layers":[{"annotations":{"createdAt":null}}]}`,
	`{"layers":[{"annotations":{"createdAt":"yesterday"}}]}`,
	`{"layers":[{"annotations":{"createdAt":"2024-01-01T00:00:00Z "}}]}`,
	`{"layers":[{"annotations":{"createdAt":"2024-01-01T00:00:00+24:00"}}]}`,
	`{"layers":[{"annotations":{"createdAt":"2024-01-01t00:00:00z"}}]}`,
	`{"layers":[{"annotations":{"createdAt":"2024-01-01T00:00:00\u005a"}}]}`,
	`{"layers":[{"annotations":{"createdAt":1}}]}`,
	`{"layers":[{"annotations":{"createdAt":{}}}]}`,
	`{"layers":[{"annotations":{"createdAt":[]}}]}`,
	`{"layers":[{"annotations":{"createdAt":true}}]}`,
	`{"Layers":[{"BLOB":"x","Parent":2}],"RECORDS":[{"Digest":"d"}]}`,
	`{"layerS":[{"blob":"x"}],"layers":[{"blob":"y"}]}`,
	"{\"layers\":[{\"\u212aey\":1,\"blo\u212a\":\"x\"}]}",
	"{\"records\":[{\"\u017felector\":1,\"inputs\":[[{\"\u017felector\":\"s\",\"lin\u212a\":3}]]}]}",
	"{\"records\":[{\"d\u0131gest\":\"d\"}]}",
	"{\"records\":[{\"DİGEST\":\"d\"}]}",
	`{"layers":[{"\u0062lob":"x"}]}`,
	`{"\u006cayers":[{"blob":"x"}]}`,
	`{"lay\u0065rs":[{"BLO\u0042":"x"}]}`,
	`{"unknown":{"a":[1,2,{"b":null}],"c":"d\n"},"layers":[{"x":[[[]]],"blob":"x"}]}`,
	`{"unknown":[1,2,]}`,
	`{"unknown":{"a" 1}}`,
	`{"unknown":{"a":1,}}`,
	`{"unknown":{1:1}}`,
	`{"unknown":tru}`,
	`{"unknown":-01}`,
	`{"unknown":1.}`,
	`{"unknown":1.5e}`,
	`{"unknown":1.5e+7}`,
	`{"unknown":-0.0E-0}`,
	`{"unknown":"\u00zz"}`,
	`{"unknown":[}`,
	`{"unknown":{]}`,
	"{\"unknown\":\"\x00\"}",
	`{"records":[{"layers":[{"layer":0,"createdAt":"2026-01-02T03:04:10Z"}],"digest":"sha256:x","inputs":[[{"link":7}]]}]}`,
	`{"records":[{"layers":[{"layer":null,"createdAt":null}]}]}`,
	`{"records":[{"layers":[null,{}]}]}`,
	`{"records":[{"layers":{}}]}`,
	`{"records":[{"chains":[{"layers":[0,1,2],"createdAt":"2026-01-02T03:04:10.5Z"}]}]}`,
	`{"records":[{"chains":[{"layers":null}]}]}`,
	`{"records":[{"chains":[{"layers":[]}]}]}`,
	`{"records":[{"chains":[{}]}]}`,
	`{"records":[{"chains":[{"layers":[null,1]}]}]}`,
	`{"records":[{"chains":[{"layers":[1.5]}]}]}`,
	`{"records":[{"chains":[{"layers":["1"]}]}]}`,
	`{"records":[{"chains":[{"layers":[[]]}]}]}`,
	`{"records":[{"inputs":[]}]}`,
	`{"records":[{"inputs":null}]}`,
	`{"records":[{"inputs":[[],null,[{}]]}]}`,
	`{"records":[{"inputs":[[null]]}]}`,
	`{"records":[{"inputs":[{}]}]}`,
	`{"records":[{"inputs":[[{"selector":"","link":-1}]]}]}`,
	`{"records":[{"inputs":[[{"selector":"<a&b>","link":0}]]}]}`,
	`{"records":[{"inputs":[[{"link":1},{"link":2}]]},{"inputs":[[{"link":3}]]}]}`,
	`{"records":[{"digest":"a"},{"digest":"b"}],"records":[{"inputs":[[{"link":1}]]}]}`,
	`{"records":[{"digest":"a"},{"digest":"b"},{"digest":"c"}],"records":[{"layers":[]}],"records":[{},{},{},{}]}`,
	`{"records":[{"digest":"a"},{"digest":"b"}],"records":[],"records":[{}]}`,
	`{"records":[{"inputs":[[{"link":1,"selector":"s"},{"link":2}]]}],"records":[{"inputs":[[{"link":5}]]}],"records":[{"inputs":[[{},{}]]}]}`,
	`{"layers":[{"blob":"x"}],"layers":null}`,
	" \t\r\n{ \t\r\n\"layers\" \t\r\n: \t\r\n[ \t\r\n{ \t\r\n\"blob\" \t\r\n: \t\r\n\"x\" \t\r\n} \t\r\n] \t\r\n} \t\r\n",
	"\f{}",
	"{}\f",
	"\u00a0{}",
	"\xef\xbb\xbf{}",
}

func TestConfigJSONTricky(t *testing.T) {
	for _, in := range cjTricky {
		cjCheck(t, []byte(in))
	}
	for _, in := range cjSeedFiles(t) {
		cjCheck(t, in)
	}
}

// Every byte at every place in a string that is long enough for the
// eight-bytes-at-a-time scan.
func TestConfigJSONStringBytes(t *testing.T) {
	for c := range 256 {
		for at := range 17 {
			s := []byte(strings.Repeat("a", 20))
			s[at] = byte(c)
			cjCheck(t, []byte(`{"layers":[{"blob":"`+string(s)+`"}]}`))
			cjCheck(t, []byte(`{"x":"`+string(s)+`","records":[{"digest":"`+string(s[:at+1])+`"}]}`))
		}
	}
}

// Nesting: encoding/json allows 10000 levels of arrays and objects.
func TestConfigJSONDepth(t *testing.T) {
	for _, depth := range []int{10, 100, 9998, 9999, 10000, 10001, 20000} {
		for _, open := range []string{"[", `{"a":`} {
			closeWith := "]"
			if open != "[" {
				closeWith = "}"
			}
			// The config object is one level, the unknown field's value
			// the next.
			n := depth - 1
			in := `{"x":` + strings.Repeat(open, n) + "1" + strings.Repeat(closeWith, n) + `}`
			cjCheck(t, []byte(in))
			in = `{"x":` + strings.Repeat(open, n-1) + strings.Repeat("[]", 1) + strings.Repeat(closeWith, n-1) + `}`
			cjCheck(t, []byte(in))
			// Nested in records.
			in = `{"records":[{"inputs":[[{"x":` + strings.Repeat(open, n-5) + "null" + strings.Repeat(closeWith, n-5) + `}]]}]}`
			cjCheck(t, []byte(in))
		}
	}
}

// Errors say what and where.
func TestConfigJSONErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, "offset 0: unexpected end of JSON input"},
		{`{"layers":[{"parent":"1"}]}`, "offset 21: cannot decode string as integer"},
		{`{"layers":[{"parent":1.5}]}`, "offset 21: number is not an integer"},
		{`{"layers":[{"parent":1x}]}`, "offset 22: invalid character 'x' after object key:value pair"},
		{`{"records":[{"layers":[{"createdAt":"yesterday"}]}]}`, `offset 36: bad time: parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"`},
		{`{} x`, "offset 3: invalid character 'x' after top-level value"},
		{`{"records":{}}`, "offset 11: cannot decode object as array"},
		{`{"x":` + strings.Repeat("[", 10000), "offset 10004: exceeded max depth"},
	} {
		_, err := decodeConfig([]byte(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("decodeConfig(%.40q): error %v, want %s", tc.in, err, tc.want)
		}
	}
}

// What Parse relies on: room in the slices is used, not replaced.
func TestConfigJSONInto(t *testing.T) {
	c := remotecache.CacheConfig{
		Layers:  make([]remotecache.CacheLayer, 0, 10),
		Records: make([]remotecache.CacheRecord, 0, 10),
	}
	layers, records := &c.Layers[:1][0], &c.Records[:1][0]
	if err := decodeConfigInto([]byte(cjBase), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Layers) != 3 || &c.Layers[0] != layers || len(c.Records) != 3 || &c.Records[0] != records {
		t.Fatalf("slices with room were not used: %d layers, %d records", len(c.Layers), len(c.Records))
	}
}

// Random configs, encoded by json.Marshal, decode as encoding/json decodes
// them.
func TestConfigJSONRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for range n {
		if dt, err := json.Marshal(cjRandomConfig(rng)); err == nil {
			cjCheck(t, dt)
		}
	}
}

var cjOddStrings = []string{
	"", "a", "sha256:" + strings.Repeat("0123456789abcdef", 4), "<", ">", "&", "\u2028", "\u2029",
	"\x00", "\x01", "\b", "\f", "\n", "\r", "\t", "\x1f", "\x7f", `"`, `\`, "/", "\xff", "\xed\xa0\x80",
	"\xe2\x80", "é", "😀", "\ufffd", "\u212a", "ſ", "\u0085", "\u00a0", "\ufeff", "'", " ",
}

func cjRandomString(rng *rand.Rand) string {
	var b strings.Builder
	for range rng.IntN(5) {
		b.WriteString(cjOddStrings[rng.IntN(len(cjOddStrings))])
	}
	return b.String()
}

func cjRandomInt(rng *rand.Rand) int {
	switch rng.IntN(6) {
	case 0:
		return 0
	case 1:
		return -1
	case 2:
		return []int{math.MaxInt64, math.MinInt64, math.MaxInt32, -math.MaxInt32}[rng.IntN(4)]
	case 3:
		return int(rng.Int64())
	default:
		return rng.IntN(1000) - 100
	}
}

var cjZones = []*time.Location{
	time.UTC, time.Local, time.FixedZone("", 0), time.FixedZone("X", 3600), time.FixedZone("", -5*3600-30*60),
	time.FixedZone("odd", 59), time.FixedZone("odd", -61), time.FixedZone("big", 23*3600+59*60+59),
	time.FixedZone("too big", 24*3600), time.FixedZone("too small", -24*3600-1), time.FixedZone("huge", 100*3600),
}

func cjRandomTime(rng *rand.Rand) time.Time {
	var t time.Time
	switch rng.IntN(5) {
	case 0:
		// zero
	case 1:
		// Around year 0 and year 9999.
		edge := []int64{-62167219200, 253402300799}[rng.IntN(2)]
		t = time.Unix(edge+rng.Int64N(4*86400)-2*86400, rng.Int64N(1e9))
	case 2:
		t = time.Unix(rng.Int64N(1<<40)-1<<39, rng.Int64N(1e9))
	default:
		t = time.Unix(rng.Int64N(4e9), []int64{0, 1, 1e6, 5e8, 999999999, rng.Int64N(1e9)}[rng.IntN(6)])
	}
	return t.In(cjZones[rng.IntN(len(cjZones))])
}

func cjRandomConfig(rng *rand.Rand) *remotecache.CacheConfig {
	c := &remotecache.CacheConfig{}
	if rng.IntN(4) > 0 {
		c.Layers = make([]remotecache.CacheLayer, rng.IntN(4))
		for i := range c.Layers {
			l := &c.Layers[i]
			l.Blob = digest.Digest(cjRandomString(rng))
			l.ParentIndex = cjRandomInt(rng)
			if rng.IntN(3) == 0 {
				l.Annotations = &remotecache.LayerAnnotations{
					MediaType: cjRandomString(rng),
					DiffID:    digest.Digest(cjRandomString(rng)),
					Size:      int64(cjRandomInt(rng)),
					CreatedAt: cjRandomTime(rng),
				}
			}
		}
	}
	if rng.IntN(4) > 0 {
		c.Records = make([]remotecache.CacheRecord, rng.IntN(4))
		for i := range c.Records {
			r := &c.Records[i]
			r.Digest = digest.Digest(cjRandomString(rng))
			if k := rng.IntN(4); k > 0 {
				r.Results = make([]remotecache.CacheResult, k-1)
				for j := range r.Results {
					r.Results[j] = remotecache.CacheResult{LayerIndex: cjRandomInt(rng), CreatedAt: cjRandomTime(rng)}
				}
			}
			if k := rng.IntN(4); k > 0 {
				r.ChainedResults = make([]remotecache.ChainedResult, k-1)
				for j := range r.ChainedResults {
					cr := &r.ChainedResults[j]
					cr.CreatedAt = cjRandomTime(rng)
					if k := rng.IntN(4); k > 0 {
						cr.LayerIndexes = make([]int, k-1)
						for x := range cr.LayerIndexes {
							cr.LayerIndexes[x] = cjRandomInt(rng)
						}
					}
				}
			}
			if k := rng.IntN(4); k > 0 {
				r.Inputs = make([][]remotecache.CacheInput, k-1)
				for j := range r.Inputs {
					if k := rng.IntN(4); k > 0 {
						r.Inputs[j] = make([]remotecache.CacheInput, k-1)
						for x := range r.Inputs[j] {
							r.Inputs[j][x] = remotecache.CacheInput{Selector: cjRandomString(rng), LinkIndex: cjRandomInt(rng)}
						}
					}
				}
			}
		}
	}
	return c
}

// cjSeedFiles returns the BuildKit fixture's config (index.json, manifest,
// config) and the golden config.
func cjSeedFiles(t testing.TB) [][]byte {
	t.Helper()
	dir := filepath.Join("testdata", "buildkit-local-cache")
	blob := func(d digest.Digest) []byte {
		dt, err := os.ReadFile(filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		return dt
	}
	var index struct {
		Manifests []struct{ Digest digest.Digest } `json:"manifests"`
	}
	dt, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(dt, &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v", err)
	}
	var manifest struct {
		Config struct{ Digest digest.Digest } `json:"config"`
	}
	if err := json.Unmarshal(blob(index.Manifests[0].Digest), &manifest); err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "golden", "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{blob(manifest.Config.Digest), golden}
}

// The fixture's and the golden config decode, and json.Marshal encodes
// them back to the same bytes.
func TestConfigJSONFixtures(t *testing.T) {
	for _, dt := range cjSeedFiles(t) {
		c, err := decodeConfig(dt)
		if err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, bytes.TrimSpace(dt)) {
			t.Fatalf("round trip changed the config:\n%s\n%s", dt, out)
		}
	}
}

// FuzzConfigJSON decodes the input with encoding/json and decodeConfig: the
// results must be the same. The seed corpus (testdata/fuzz/FuzzConfigJSON) has the
// fixture's config, the golden config and the tricky inputs above.
func FuzzConfigJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		cjCheck(t, data)
	})
}
