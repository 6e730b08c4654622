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

// The lexical half of the config decoder (configjson.go holds the
// structural half, the types and their fields): strings, numbers, times,
// literals, skipping unknown values, white space and errors with their
// byte offsets, each as encoding/json reads them.

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
