package remotecache

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/pkg/errors"
)

// A hand-written JSON decoder for CacheConfig: configs can hold a hundred
// thousand records and more, and encoding/json's reflection was most of the
// time Parse took (BENCHMARKS.md, "Config JSON: decoder choice", measures
// it against encoding/json and two libraries, and says why none of them
// took its place). decodeConfigInto is exactly equivalent to json.Unmarshal
// for these types, down to its corners (configjson_test.go fuzzes it
// against encoding/json): keys match fields exactly or else by Unicode
// case folding, the last of duplicate keys wins, unknown keys are skipped,
// null leaves strings, numbers and times as they are and sets slices and
// pointers to nil, an empty array gives an empty non-nil slice, and a slice
// that has elements is decoded into in place. It differs in how it stops:
// at the first error (its own, with a byte offset), where encoding/json
// goes on past type errors, so on error the value is partly filled in a
// different way. Strings with escapes or invalid UTF-8 are left to
// encoding/json, and times to (*time.Time).UnmarshalJSON, as encoding/json
// does.

// decodeConfigInto decodes a cache config into c as json.Unmarshal(data, c)
// would. Room in c.Layers and c.Records (as from make with a capacity) is
// used before they grow.
func decodeConfigInto(data []byte, c *CacheConfig) error {
	d := configDecoder{data: data}
	d.ws()
	if err := configType.decode(&d, c); err != nil {
		return err
	}
	d.ws()
	if d.pos < len(d.data) {
		return d.syntaxErr("after top-level value")
	}
	return nil
}

// maxNestingDepth is encoding/json's limit on nested arrays and objects.
const maxNestingDepth = 10000

// configDecoder reads one config. Small slices (results, chains, their
// layer indexes, inputs) are read into an arena's scratch space and then
// copied into its slab, each cut to its length so that appending to one
// copies it.
type configDecoder struct {
	data []byte
	pos  int

	results arena[CacheResult]
	chains  arena[ChainedResult]
	indexes arena[int]
	slots   arena[[]CacheInput]
	inputs  arena[CacheInput]
}

// objectType is how the JSON object of a T decodes: its fields, each
// with its JSON name and decoder.
type objectType[T any] struct {
	what   string // for errors
	depth  int    // arrays and objects it is in, itself included
	fields []field[T]
}

type field[T any] struct {
	name   string
	decode func(*configDecoder, *T) error
}

// The types of the config, outermost first.
var (
	configType = &objectType[CacheConfig]{"cache config", 1, []field[CacheConfig]{
		{"layers", func(d *configDecoder, c *CacheConfig) error {
			if cap(c.Layers) == 0 && d.peek() == '[' {
				c.Layers = make([]CacheLayer, 0, d.estimate('o'))
			}
			return decodeSlice(d, &c.Layers, nil, layerType.decode)
		}},
		{"records", func(d *configDecoder, c *CacheConfig) error {
			if cap(c.Records) == 0 && d.peek() == '[' {
				c.Records = make([]CacheRecord, 0, d.estimate('g'))
			}
			return decodeSlice(d, &c.Records, nil, recordType.decode)
		}}}}
	layerType = &objectType[CacheLayer]{"layer", 3, []field[CacheLayer]{
		{"blob", func(d *configDecoder, l *CacheLayer) error { return d.string((*string)(&l.Blob)) }},
		{"parent", func(d *configDecoder, l *CacheLayer) error { return decodeInt(d, &l.ParentIndex) }},
		{"annotations", func(d *configDecoder, l *CacheLayer) error {
			if d.peek() != '{' {
				err := d.nullOr("annotations")
				if err == nil {
					l.Annotations = nil
				}
				return err
			}
			if l.Annotations == nil {
				l.Annotations = new(LayerAnnotations)
			}
			return annotationsType.decode(d, l.Annotations)
		}}}}
	annotationsType = &objectType[LayerAnnotations]{"annotations", 4, []field[LayerAnnotations]{
		{"mediaType", func(d *configDecoder, a *LayerAnnotations) error { return d.string(&a.MediaType) }},
		{"diffID", func(d *configDecoder, a *LayerAnnotations) error { return d.string((*string)(&a.DiffID)) }},
		{"size", func(d *configDecoder, a *LayerAnnotations) error { return decodeInt(d, &a.Size) }},
		{"createdAt", func(d *configDecoder, a *LayerAnnotations) error { return d.time(&a.CreatedAt) }}}}
	recordType = &objectType[CacheRecord]{"record", 3, []field[CacheRecord]{
		{"layers", func(d *configDecoder, r *CacheRecord) error {
			return decodeSlice(d, &r.Results, &d.results, resultType.decode)
		}},
		{"chains", func(d *configDecoder, r *CacheRecord) error {
			return decodeSlice(d, &r.ChainedResults, &d.chains, chainType.decode)
		}},
		{"digest", func(d *configDecoder, r *CacheRecord) error { return d.string((*string)(&r.Digest)) }},
		{"inputs", func(d *configDecoder, r *CacheRecord) error {
			return decodeSlice(d, &r.Inputs, &d.slots, func(d *configDecoder, s *[]CacheInput) error {
				return decodeSlice(d, s, &d.inputs, inputType.decode)
			})
		}}}}
	resultType = &objectType[CacheResult]{"result", 5, []field[CacheResult]{
		{"layer", func(d *configDecoder, r *CacheResult) error { return decodeInt(d, &r.LayerIndex) }},
		{"createdAt", func(d *configDecoder, r *CacheResult) error { return d.time(&r.CreatedAt) }}}}
	chainType = &objectType[ChainedResult]{"chained result", 5, []field[ChainedResult]{
		{"layers", func(d *configDecoder, c *ChainedResult) error {
			return decodeSlice(d, &c.LayerIndexes, &d.indexes, decodeInt[int])
		}},
		{"createdAt", func(d *configDecoder, c *ChainedResult) error { return d.time(&c.CreatedAt) }}}}
	inputType = &objectType[CacheInput]{"input", 6, []field[CacheInput]{
		{"selector", func(d *configDecoder, in *CacheInput) error { return d.string(&in.Selector) }},
		{"link", func(d *configDecoder, in *CacheInput) error { return decodeInt(d, &in.LinkIndex) }}}}
)

// decode decodes an object, or null (which leaves *v as it is), into *v.
func (o *objectType[T]) decode(d *configDecoder, v *T) error {
	if d.peek() != '{' {
		return d.nullOr(o.what)
	}
	d.pos++
	for first, hint := true, 0; ; first = false {
		if ok, err := d.next(first, '}'); !ok {
			return err
		}
		f, err := findKey(d, o.fields, hint)
		if err == nil {
			if f >= 0 {
				hint = f + 1
				err = o.fields[f].decode(d, v)
			} else {
				err = d.skip(o.depth)
			}
		}
		if err != nil {
			return err
		}
	}
}

// estimate bounds the number of layers (c is 'o') or records ('g') in the
// rest of the input, as Parse does: decoding into a slice with no room is
// decoding into new zero elements, so giving it room changes nothing but
// how often it grows.
func (d *configDecoder) estimate(c byte) int {
	rest := d.data[d.pos:]
	return min(bytes.Count(rest, []byte{c}), len(rest)/minEntryJSON)
}

// nullOr reads a null where a what was expected but is not there, or
// fails: the value is something else.
func (d *configDecoder) nullOr(what string) error {
	if d.peek() == 'n' {
		return d.null()
	}
	return d.typeErr(what)
}

// decodeSlice decodes an array, or null, into *p. An array decodes into
// the elements *p has room for and then grows it, as encoding/json does;
// with an arena, a slice with no room is read into its scratch space
// (whose room is all zero elements) and copied into its slab.
func decodeSlice[T any](d *configDecoder, p *[]T, a *arena[T], elem func(*configDecoder, *T) error) error {
	if d.peek() != '[' {
		err := d.nullOr("array")
		if err == nil {
			*p = nil
		}
		return err
	}
	d.pos++
	useScratch := a != nil && cap(*p) == 0
	s := (*p)[:0]
	if useScratch {
		// The element decoder can use other arenas, never this one.
		s = a.scratch[:0]
	}
	var zero T
	for i := 0; ; i++ {
		if ok, err := d.next(i == 0, ']'); !ok {
			if err != nil {
				return err
			}
			break
		}
		if i < cap(s) {
			s = s[:i+1]
		} else {
			s = append(s, zero)
		}
		if err := elem(d, &s[i]); err != nil {
			return err
		}
	}
	switch {
	case len(s) == 0:
		*p = []T{}
	case useScratch:
		*p = a.take(s)
		clear(s)
	default:
		*p = s
	}
	if useScratch {
		a.scratch = s
	}
	return nil
}

// arena is scratch space to read a slice into, and a slab to copy it to.
type arena[T any] struct {
	scratch []T
	free    []T // the rest of the slab
	next    int // length of the next slab
}

// take returns a copy of src whose capacity is its length.
func (a *arena[T]) take(src []T) []T {
	n := len(src)
	if n > len(a.free) {
		a.next = min(max(2*a.next, 16), 1024)
		a.free = make([]T, max(n, a.next))
	}
	dst := a.free[:n:n]
	copy(dst, src)
	a.free = a.free[n:]
	return dst
}

// next moves to the next element of an array (end is ']') or member of an
// object ('}'): first is true right after the opening bracket. It reports
// false at the closing one.
func (d *configDecoder) next(first bool, end byte) (bool, error) {
	d.ws()
	if d.pos >= len(d.data) {
		return false, d.syntaxErr("")
	}
	c := d.data[d.pos]
	if c == end {
		d.pos++
		return false, nil
	}
	if !first {
		if c != ',' {
			if end == '}' {
				return false, d.syntaxErr("after object key:value pair")
			}
			return false, d.syntaxErr("after array element")
		}
		d.pos++
		d.ws()
		if d.pos >= len(d.data) {
			return false, d.syntaxErr("")
		}
	}
	return true, nil
}

// findKey reads an object key, the ':' and the space up to the value, and
// returns the index of the field the key names, or -1. Keys come in the
// order of the fields as a rule: the field at next is tried first.
func findKey[T any](d *configDecoder, fields []field[T], next int) (int, error) {
	if d.data[d.pos] != '"' {
		return -1, d.syntaxErr("looking for beginning of object key string")
	}
	f := exactKey(fields, d.data, d.pos, next)
	if f >= 0 {
		d.pos += len(fields[f].name) + 2
	} else {
		start := d.pos
		plain, err := d.scanString()
		if err != nil {
			return -1, err
		}
		key := d.data[start+1 : d.pos-1]
		if !plain && bytes.IndexByte(key, '\\') >= 0 {
			var s string
			if err := json.Unmarshal(d.data[start:d.pos], &s); err != nil {
				return -1, d.errAt(start, "bad object key", err)
			}
			key = []byte(s)
		}
		f = matchKey(fields, key)
	}
	d.ws()
	if d.pos >= len(d.data) || d.data[d.pos] != ':' {
		return -1, d.syntaxErr("after object key")
	}
	d.pos++
	d.ws()
	if d.pos >= len(d.data) {
		return -1, d.syntaxErr("")
	}
	return f, nil
}

// exactKey returns the index of the field whose quoted name starts
// data[pos:], trying first the one at next, or -1: the common case, a key
// as the encoder writes it. Names need no escapes, so that quoted form is
// the whole key.
func exactKey[T any](fields []field[T], data []byte, pos, next int) int {
	for k := range fields {
		i := next + k
		if i >= len(fields) {
			i -= len(fields)
		}
		end := pos + 1 + len(fields[i].name)
		if end < len(data) && data[end] == '"' && string(data[pos+1:end]) == fields[i].name {
			return i
		}
	}
	return -1
}

// matchKey matches an unquoted key as encoding/json does: exactly, or else
// under Unicode simple case folding (so the Kelvin sign matches k, and the
// long s matches s); no two names fold alike. Invalid UTF-8 matches
// nothing, as the U+FFFD that encoding/json's unquoting makes of it does
// not.
func matchKey[T any](fields []field[T], key []byte) int {
	for i, f := range fields {
		if bytes.EqualFold(key, []byte(f.name)) {
			return i
		}
	}
	return -1
}

// string decodes a string or null into *p.
func (d *configDecoder) string(p *string) error {
	if d.peek() != '"' {
		return d.nullOr("string")
	}
	start := d.pos
	plain, err := d.scanString()
	if err != nil {
		return err
	}
	if raw := d.data[start+1 : d.pos-1]; plain || utf8.Valid(raw) && bytes.IndexByte(raw, '\\') < 0 {
		*p = string(raw)
		return nil
	}
	// Escapes or invalid UTF-8: leave them to encoding/json.
	if err := json.Unmarshal(d.data[start:d.pos], p); err != nil {
		return d.errAt(start, "bad string", err)
	}
	return nil
}

// stringClass marks the bytes that end the fast scan of a string: the
// quote, the backslash, control characters and bytes of non-ASCII runes.
var stringClass = func() (t [256]bool) {
	for i := range 256 {
		t[i] = i < 0x20 || i == '"' || i == '\\' || i >= utf8.RuneSelf
	}
	return t
}()

// hasStringSpecial reports whether one of the eight bytes in x is a byte
// of stringClass. (Each test finds whether there is such a byte exactly; it
// may misplace it, which does not matter here.)
func hasStringSpecial(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	control := (x - 0x20*ones) & ^x & highs
	q := x ^ '"'*ones
	quote := (q - ones) & ^q & highs
	b := x ^ '\\'*ones
	backslash := (b - ones) & ^b & highs
	return control|quote|backslash|x&highs != 0
}

// scanString moves past the string at d.pos (at its '"') and reports
// whether it is plain: all ASCII, without escapes. It checks it as
// encoding/json's scanner does but for its escapes: a string with escapes
// is checked by what unquotes it, or skip, or fails to be a time.
func (d *configDecoder) scanString() (plain bool, err error) {
	plain = true
	i := d.pos + 1
	data := d.data
	for {
		// Eight bytes at a time while none ends the fast scan.
		for i+8 <= len(data) && !hasStringSpecial(binary.LittleEndian.Uint64(data[i:])) {
			i += 8
		}
		for i < len(data) && !stringClass[data[i]] {
			i++
		}
		if i >= len(data) {
			d.pos = len(data)
			return false, d.syntaxErr("in string literal")
		}
		switch c := data[i]; {
		case c == '"':
			d.pos = i + 1
			return plain, nil
		case c == '\\':
			plain = false
			i += 2
		case c < 0x20:
			d.pos = i
			return false, d.syntaxErr("in string literal")
		default: // not ASCII: encoding/json's scanner takes any such byte
			plain = false
			i++
		}
	}
}

// isNumberByte reports whether c can go on a number after its digits.
func isNumberByte(c byte) bool { return '0' <= c && c <= '9' || c == '.' || c == 'e' || c == 'E' }

// decodeInt decodes an integer in range of T, or null, into *p.
func decodeInt[T int | int64](d *configDecoder, p *T) error {
	switch c := d.peek(); {
	case c == 'n':
		return d.null()
	case c != '-' && (c < '0' || '9' < c):
		return d.typeErr("integer")
	}
	// The common case: up to 18 digits, no leading zero, and no fraction
	// or exponent, read in one pass.
	data, start := d.data, d.pos
	i := start
	if data[i] == '-' {
		i++
	}
	var u uint64
	j := i
	for ; j < len(data) && j-i < 18 && '0' <= data[j] && data[j] <= '9'; j++ {
		u = u*10 + uint64(data[j]-'0')
	}
	if j > i && (data[i] != '0' || j == i+1) && (j == len(data) || !isNumberByte(data[j])) {
		d.pos = j
		n := int64(u)
		if i > start {
			n = -n
		}
		if int64(T(n)) != n {
			return d.errAt(start, "number out of range", nil)
		}
		*p = T(n)
		return nil
	}
	if err := d.scanNumber(); err != nil {
		return err
	}
	num := d.data[start:d.pos]
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil && bytes.ContainsAny(num, ".eE") {
		return d.errAt(start, "number is not an integer", nil)
	}
	if err != nil || int64(T(n)) != n {
		return d.errAt(start, "number out of range", nil)
	}
	*p = T(n)
	return nil
}

// time decodes a time (a string, or null which leaves *t as it is) with
// (*time.Time).UnmarshalJSON, as encoding/json does.
func (d *configDecoder) time(t *time.Time) error {
	if d.peek() != '"' {
		return d.nullOr("time string")
	}
	start := d.pos
	if _, err := d.scanString(); err != nil {
		return err
	}
	if err := t.UnmarshalJSON(d.data[start:d.pos]); err != nil {
		return d.errAt(start, "bad time", err)
	}
	return nil
}

// null reads the literal null.
func (d *configDecoder) null() error { return d.literal("null") }

func (d *configDecoder) literal(lit string) error {
	for i := range len(lit) {
		if d.pos >= len(d.data) || d.data[d.pos] != lit[i] {
			return d.syntaxErr("in literal " + lit)
		}
		d.pos++
	}
	return nil
}

// scanNumber moves past a number, checking it as encoding/json's scanner
// does.
func (d *configDecoder) scanNumber() error {
	data, i := d.data, d.pos
	if data[i] == '-' {
		i++
	}
	ok := i < len(data) && data[i] == '0'
	if ok {
		i++
	} else if i, ok = digits(data, i); !ok {
		d.pos = i
		return d.syntaxErr("in numeric literal")
	}
	if i < len(data) && data[i] == '.' {
		if i, ok = digits(data, i+1); !ok {
			d.pos = i
			return d.syntaxErr("after decimal point in numeric literal")
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i, ok = digits(data, i); !ok {
			d.pos = i
			return d.syntaxErr("in exponent of numeric literal")
		}
	}
	d.pos = i
	return nil
}

// digits returns the end of the digits at data[i:], and whether there are
// any.
func digits(data []byte, i int) (int, bool) {
	j := i
	for j < len(data) && '0' <= data[j] && data[j] <= '9' {
		j++
	}
	return j, j > i
}

// skip moves past a value of no field, checking it. depth is the number
// of arrays and objects the value is in.
func (d *configDecoder) skip(depth int) error {
	switch c := d.peek(); c {
	case '{', '[':
		if depth++; depth > maxNestingDepth {
			return d.errAt(d.pos, "exceeded max depth", nil)
		}
		d.pos++
		for first := true; ; first = false {
			if more, err := d.next(first, c+2); !more { // '}' or ']'
				return err
			}
			if c == '{' {
				if _, err := findKey[struct{}](d, nil, 0); err != nil {
					return err
				}
			}
			if err := d.skip(depth); err != nil {
				return err
			}
		}
	case '"':
		start := d.pos
		plain, err := d.scanString()
		if err == nil && !plain && !json.Valid(d.data[start:d.pos]) {
			err = d.errAt(start, "bad string", nil)
		}
		return err
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.null()
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return d.scanNumber()
	}
	return d.syntaxErr("looking for beginning of value")
}

// ws moves past white space.
func (d *configDecoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// peek returns the byte at d.pos, or 0 at the end.
func (d *configDecoder) peek() byte {
	if d.pos < len(d.data) {
		return d.data[d.pos]
	}
	return 0
}

// errAt reports what is wrong at byte off, and err if another package
// found it.
func (d *configDecoder) errAt(off int, what string, err error) error {
	if err != nil {
		return errors.Wrapf(err, "offset %d: %s", off, what)
	}
	return errors.Errorf("offset %d: %s", off, what)
}

// syntaxErr reports the byte at d.pos, in context, or the end of input.
func (d *configDecoder) syntaxErr(context string) error {
	if d.pos >= len(d.data) {
		return d.errAt(d.pos, "unexpected end of JSON input", nil)
	}
	what := "invalid character " + strconv.QuoteRune(rune(d.data[d.pos])) // as encoding/json's quoteChar
	if context != "" {
		what += " " + context
	}
	return d.errAt(d.pos, what, nil)
}

// typeErr reports a value of the wrong kind where want is expected, or a
// byte that starts no value.
func (d *configDecoder) typeErr(want string) error {
	c := d.peek()
	kind := map[byte]string{'{': "object", '[': "array", '"': "string", 't': "bool", 'f': "bool", 'n': "null"}[c]
	if c == '-' || '0' <= c && c <= '9' {
		kind = "number"
	}
	if kind == "" {
		return d.syntaxErr("looking for beginning of value")
	}
	return d.errAt(d.pos, "cannot decode "+kind+" as "+want, nil)
}
