package remotecache

import (
	"bytes"
	"encoding/json"
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
	return decodeConfigWatched(data, c, nil)
}

// decodeConfigWatched is decodeConfigInto that calls layers(false) before
// it decodes a "layers" value of the config, and layers(true) after it
// has decoded one, so that a caller can work on c.Layers while the rest
// is decoded (between a true and the next false, c.Layers does not
// change).
func decodeConfigWatched(data []byte, c *CacheConfig, layers func(decoded bool)) error {
	d := configDecoder{data: data, layers: layers}
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
	data   []byte
	pos    int
	layers func(decoded bool) // see decodeConfigWatched; nil for none

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
			if d.layers != nil {
				d.layers(false)
			}
			if cap(c.Layers) == 0 && d.peek() == '[' {
				c.Layers = make([]CacheLayer, 0, d.estimate('o'))
			}
			err := decodeSlice(d, &c.Layers, nil, layerType.decode)
			if err == nil && d.layers != nil {
				d.layers(true)
			}
			return err
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
