package remotecache

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// A hand-written JSON decoder for CacheConfig. Configs can hold a hundred
// thousand records and more, and encoding/json's reflection was most of the
// time Parse took. Encoding is encoding/json's. decodeConfigInto is exactly equivalent to json.Unmarshal
// for these types (configjson_test.go checks that by fuzzing against it): it
// accepts what json.Unmarshal accepts and gives the same value, and fails
// where it fails (with its own error, that says what is wrong and at which
// byte offset).
//
// The decoder follows encoding/json's semantics down to its corners: keys
// match fields exactly or else case-insensitively (by encoding/json's
// folding, with the Kelvin sign for k and the long s for s), the last of
// duplicate keys wins, unknown keys are skipped, null leaves strings,
// numbers and times unchanged and sets slices and pointers to nil, an empty
// array gives an empty non-nil slice, and decoding into a slice that
// already has elements decodes into them in place, as encoding/json does. It
// differs in how it stops: at the first error, where encoding/json goes on
// past type errors, so on error the value is partly filled in a different
// way. Strings with escapes or invalid UTF-8 are left to encoding/json, and
// times to (*time.Time).UnmarshalJSON, which is also what encoding/json
// calls.

// decodeConfigInto decodes a cache config into c as json.Unmarshal(data, c)
// would. Room in c.Layers and c.Records (as from make with a capacity) is
// used before they grow.
func decodeConfigInto(data []byte, c *CacheConfig) error {
	d := configDecoder{data: data}
	d.ws()
	if d.pos >= len(d.data) {
		return d.syntaxErr("looking for beginning of value")
	}
	switch d.data[d.pos] {
	case 'n':
		if err := d.null(); err != nil {
			return err
		}
	case '{':
		if err := d.config(c); err != nil {
			return err
		}
	default:
		return d.typeErr("cache config")
	}
	d.ws()
	if d.pos < len(d.data) {
		return d.syntaxErr("after top-level value")
	}
	return nil
}

// maxNestingDepth is encoding/json's limit on nested arrays and objects.
const maxNestingDepth = 10000

// configJSONError is a malformed cache config: what is wrong and where.
type configJSONError struct {
	Offset int    // byte offset in the input
	What   string // what is wrong there
	Err    error  // the cause, if another package found it
}

func (e *configJSONError) Error() string {
	s := "offset " + strconv.Itoa(e.Offset) + ": " + e.What
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *configJSONError) Unwrap() error { return e.Err }

// configDecoder reads one config. Small slices (results, chains, their
// layer indexes, inputs) are read into scratch space and then copied into
// slabs shared by many of them, each cut to its length so that appending to
// one copies it.
type configDecoder struct {
	data  []byte
	pos   int
	stack []byte // open arrays and objects of a value being skipped

	results   []CacheResult
	chains    []ChainedResult
	indexes   []int
	slots     [][]CacheInput
	inputs    []CacheInput
	resultsS  slab[CacheResult]
	chainsS   slab[ChainedResult]
	indexesS  slab[int]
	slotsS    slab[[]CacheInput]
	inputsS   slab[CacheInput]
	keyBuffer []byte
}

// Fields of each type, in the order of the switches that decode them.
var (
	configKeys      = newKeySet("layers", "records")
	layerKeys       = newKeySet("blob", "parent", "annotations")
	annotationsKeys = newKeySet("mediaType", "diffID", "size", "createdAt")
	recordKeys      = newKeySet("layers", "chains", "digest", "inputs")
	resultKeys      = newKeySet("layer", "createdAt")
	chainKeys       = newKeySet("layers", "createdAt")
	inputKeys       = newKeySet("selector", "link")
)

func (d *configDecoder) config(c *CacheConfig) error {
	d.pos++ // {
	for first := true; ; first = false {
		f, ok, err := d.key(first, &configKeys)
		if !ok {
			return err
		}
		switch f {
		case 0:
			if cap(c.Layers) == 0 && d.peek() == '[' {
				c.Layers = make([]CacheLayer, 0, d.estimate('o'))
			}
			err = decodeSlice(d, &c.Layers, nil, nil, (*configDecoder).layer)
		case 1:
			if cap(c.Records) == 0 && d.peek() == '[' {
				c.Records = make([]CacheRecord, 0, d.estimate('g'))
			}
			err = decodeSlice(d, &c.Records, nil, nil, (*configDecoder).record)
		default:
			err = d.skip(1)
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

func (d *configDecoder) layer(l *CacheLayer) error {
	if ok, err := d.open('{', "layer"); !ok {
		return err
	}
	for first := true; ; first = false {
		f, ok, err := d.key(first, &layerKeys)
		if !ok {
			return err
		}
		switch f {
		case 0:
			err = d.string((*string)(&l.Blob))
		case 1:
			err = d.int(&l.ParentIndex)
		case 2:
			err = d.annotations(&l.Annotations)
		default:
			err = d.skip(3)
		}
		if err != nil {
			return err
		}
	}
}

func (d *configDecoder) annotations(p **LayerAnnotations) error {
	if d.peek() == 'n' {
		if err := d.null(); err != nil {
			return err
		}
		*p = nil
		return nil
	}
	if d.peek() != '{' {
		return d.typeErr("annotations")
	}
	if *p == nil {
		*p = new(LayerAnnotations)
	}
	a := *p
	d.pos++
	for first := true; ; first = false {
		f, ok, err := d.key(first, &annotationsKeys)
		if !ok {
			return err
		}
		switch f {
		case 0:
			err = d.string(&a.MediaType)
		case 1:
			err = d.string((*string)(&a.DiffID))
		case 2:
			var n int64
			n, ok, err = d.int64()
			if ok {
				a.Size = n
			}
		case 3:
			err = d.time(&a.CreatedAt)
		default:
			err = d.skip(4)
		}
		if err != nil {
			return err
		}
	}
}

func (d *configDecoder) record(r *CacheRecord) error {
	if ok, err := d.open('{', "record"); !ok {
		return err
	}
	for first := true; ; first = false {
		f, ok, err := d.key(first, &recordKeys)
		if !ok {
			return err
		}
		switch f {
		case 0:
			err = decodeSlice(d, &r.Results, &d.results, &d.resultsS, (*configDecoder).result)
		case 1:
			err = decodeSlice(d, &r.ChainedResults, &d.chains, &d.chainsS, (*configDecoder).chain)
		case 2:
			err = d.string((*string)(&r.Digest))
		case 3:
			err = decodeSlice(d, &r.Inputs, &d.slots, &d.slotsS, (*configDecoder).slot)
		default:
			err = d.skip(3)
		}
		if err != nil {
			return err
		}
	}
}

func (d *configDecoder) result(r *CacheResult) error {
	if ok, err := d.open('{', "result"); !ok {
		return err
	}
	for first := true; ; first = false {
		f, ok, err := d.key(first, &resultKeys)
		if !ok {
			return err
		}
		switch f {
		case 0:
			err = d.int(&r.LayerIndex)
		case 1:
			err = d.time(&r.CreatedAt)
		default:
			err = d.skip(5)
		}
		if err != nil {
			return err
		}
	}
}

func (d *configDecoder) chain(c *ChainedResult) error {
	if ok, err := d.open('{', "chained result"); !ok {
		return err
	}
	for first := true; ; first = false {
		f, ok, err := d.key(first, &chainKeys)
		if !ok {
			return err
		}
		switch f {
		case 0:
			err = decodeSlice(d, &c.LayerIndexes, &d.indexes, &d.indexesS, (*configDecoder).int)
		case 1:
			err = d.time(&c.CreatedAt)
		default:
			err = d.skip(5)
		}
		if err != nil {
			return err
		}
	}
}

func (d *configDecoder) slot(s *[]CacheInput) error {
	return decodeSlice(d, s, &d.inputs, &d.inputsS, (*configDecoder).input)
}

func (d *configDecoder) input(in *CacheInput) error {
	if ok, err := d.open('{', "input"); !ok {
		return err
	}
	for first := true; ; first = false {
		f, ok, err := d.key(first, &inputKeys)
		if !ok {
			return err
		}
		switch f {
		case 0:
			err = d.string(&in.Selector)
		case 1:
			err = d.int(&in.LinkIndex)
		default:
			err = d.skip(6)
		}
		if err != nil {
			return err
		}
	}
}

// open starts an object (open '{') that is an array element: it reports
// false, and no error, for a null (which leaves the element as it is).
func (d *configDecoder) open(c byte, what string) (bool, error) {
	switch d.peek() {
	case c:
		d.pos++
		return true, nil
	case 'n':
		return false, d.null()
	}
	return false, d.typeErr(what)
}

// decodeSlice decodes an array, or null, into *p. An array decodes into
// the elements *p has room for and then grows it, as encoding/json does;
// with scratch, a slice with no room is read into scratch and copied into
// the slab.
func decodeSlice[T any](d *configDecoder, p *[]T, scratch *[]T, sl *slab[T], elem func(*configDecoder, *T) error) error {
	switch d.peek() {
	case 'n':
		if err := d.null(); err != nil {
			return err
		}
		*p = nil
		return nil
	case '[':
	default:
		return d.typeErr("array")
	}
	d.pos++
	var zero T
	if scratch == nil || cap(*p) > 0 {
		s := (*p)[:0]
		for i := 0; ; i++ {
			ok, err := d.element(i == 0)
			if !ok {
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
		if len(s) == 0 {
			s = []T{}
		}
		*p = s
		return nil
	}
	// The element decoder can use other scratch slices, never this one.
	s := (*scratch)[:0]
	for i := 0; ; i++ {
		ok, err := d.element(i == 0)
		if !ok {
			if err != nil {
				return err
			}
			break
		}
		s = append(s, zero)
		if err := elem(d, &s[i]); err != nil {
			return err
		}
	}
	*scratch = s
	if len(s) == 0 {
		*p = []T{}
		return nil
	}
	*p = sl.take(s)
	clear(s)
	return nil
}

// slab hands out slices of one backing array after another.
type slab[T any] struct {
	free []T
	next int // length of the next backing array
}

// take returns a copy of src whose capacity is its length.
func (s *slab[T]) take(src []T) []T {
	n := len(src)
	if n > len(s.free) {
		s.next = min(max(2*s.next, 16), 1024)
		s.free = make([]T, max(n, s.next))
	}
	dst := s.free[:n:n]
	copy(dst, src)
	s.free = s.free[n:]
	return dst
}

// element moves to the next element of an array: first is true right
// after the '['. It reports false at the closing ']'.
func (d *configDecoder) element(first bool) (bool, error) {
	d.ws()
	if d.pos >= len(d.data) {
		return false, d.syntaxErr("")
	}
	c := d.data[d.pos]
	if c == ']' {
		d.pos++
		return false, nil
	}
	if !first {
		if c != ',' {
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

// key moves to the next member of an object (first is true right after
// the '{'), reads its key and the ':' and returns the index of the key in
// ks, or -1. It reports false at the closing '}' or on error.
func (d *configDecoder) key(first bool, ks *keySet) (int, bool, error) {
	d.ws()
	if d.pos >= len(d.data) {
		return 0, false, d.syntaxErr("")
	}
	c := d.data[d.pos]
	if c == '}' {
		d.pos++
		return 0, false, nil
	}
	if !first {
		if c != ',' {
			return 0, false, d.syntaxErr("after object key:value pair")
		}
		d.pos++
		d.ws()
		if d.pos >= len(d.data) {
			return 0, false, d.syntaxErr("")
		}
		c = d.data[d.pos]
	}
	if c != '"' {
		return 0, false, d.syntaxErr("looking for beginning of object key string")
	}
	f := ks.exact(d.data, d.pos)
	if f >= 0 {
		d.pos += len(ks.names[f]) + 2
	} else {
		start := d.pos
		plain, err := d.scanString()
		if err != nil {
			return 0, false, err
		}
		if plain {
			f = ks.match(d.data[start+1 : d.pos-1])
		} else {
			var key string
			if err := json.Unmarshal(d.data[start:d.pos], &key); err != nil {
				return 0, false, d.errAt(start, "bad object key", err)
			}
			f = ks.matchUnquoted(key, &d.keyBuffer)
		}
	}
	d.ws()
	if d.pos >= len(d.data) || d.data[d.pos] != ':' {
		return 0, false, d.syntaxErr("after object key")
	}
	d.pos++
	d.ws()
	if d.pos >= len(d.data) {
		return 0, false, d.syntaxErr("")
	}
	return f, true, nil
}

// keySet is the JSON names of a struct's fields, and their forms folded as
// encoding/json folds them to match keys case-insensitively.
type keySet struct {
	names  []string
	folded []string
}

func newKeySet(names ...string) keySet {
	ks := keySet{names: names}
	for _, n := range names {
		ks.folded = append(ks.folded, string(foldName(nil, []byte(n))))
	}
	return ks
}

// exact returns the index of the name whose quoted form starts data[pos:],
// or -1: the common case, a key as the encoder writes it. Names need no
// escapes, so that quoted form is the whole key.
func (ks *keySet) exact(data []byte, pos int) int {
	for i, n := range ks.names {
		end := pos + 1 + len(n)
		if end < len(data) && data[end] == '"' && string(data[pos+1:end]) == n {
			return i
		}
	}
	return -1
}

// match matches a key of printable ASCII without escapes.
func (ks *keySet) match(key []byte) int {
	for i, n := range ks.names {
		if string(key) == n {
			return i
		}
	}
	// All names are ASCII letters; ASCII folds only a-z.
	for i, f := range ks.folded {
		if len(key) == len(f) && asciiFoldedEqual(key, f) {
			return i
		}
	}
	return -1
}

func asciiFoldedEqual(key []byte, folded string) bool {
	for i := range len(key) {
		c := key[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != folded[i] {
			return false
		}
	}
	return true
}

// matchUnquoted matches any key, unquoted.
func (ks *keySet) matchUnquoted(key string, buf *[]byte) int {
	for i, n := range ks.names {
		if key == n {
			return i
		}
	}
	*buf = foldName((*buf)[:0], []byte(key))
	for i, f := range ks.folded {
		if string(*buf) == f {
			return i
		}
	}
	return -1
}

// foldName appends in folded as encoding/json folds object keys and field
// names (its appendFoldedName): ASCII to upper case, other runes to the
// smallest rune of their case-folding orbit.
func foldName(out, in []byte) []byte {
	for i := 0; i < len(in); {
		if c := in[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(in[i:])
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		out = utf8.AppendRune(out, r)
		i += n
	}
	return out
}

// string decodes a string or null into *p.
func (d *configDecoder) string(p *string) error {
	switch d.peek() {
	case '"':
	case 'n':
		return d.null()
	default:
		return d.typeErr("string")
	}
	start := d.pos
	plain, err := d.scanString()
	if err != nil {
		return err
	}
	if plain {
		*p = string(d.data[start+1 : d.pos-1])
		return nil
	}
	// Escapes or non-ASCII bytes: valid UTF-8 without escapes is as it
	// is, else leave it to encoding/json.
	if raw := d.data[start+1 : d.pos-1]; utf8.Valid(raw) && !hasBackslash(raw) {
		*p = string(raw)
		return nil
	}
	var s string
	if err := json.Unmarshal(d.data[start:d.pos], &s); err != nil {
		return d.errAt(start, "bad string", err)
	}
	*p = s
	return nil
}

func hasBackslash(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
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

// scanString moves past the string at d.pos (at its '"'), checking it as
// encoding/json's scanner does, and reports whether it is plain: no
// escapes and only ASCII.
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
			d.pos = i
			return false, d.syntaxErr("in string literal")
		}
		switch c := data[i]; {
		case c == '"':
			d.pos = i + 1
			return plain, nil
		case c == '\\':
			plain = false
			i++
			if i >= len(data) {
				d.pos = i
				return false, d.syntaxErr("in string literal")
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				for range 4 {
					if i >= len(data) || !isHex(data[i]) {
						d.pos = i
						return false, d.syntaxErr("in \\u hexadecimal character escape")
					}
					i++
				}
			default:
				d.pos = i
				return false, d.syntaxErr("in string escape code")
			}
		case c < 0x20:
			d.pos = i
			return false, d.syntaxErr("in string literal")
		default: // not ASCII: encoding/json's scanner takes any such byte
			plain = false
			i++
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// int decodes a number or null into *p.
func (d *configDecoder) int(p *int) error {
	n, ok, err := d.int64()
	if ok {
		if int64(int(n)) != n {
			return d.errAt(d.pos, "number out of range of int", nil)
		}
		*p = int(n)
	}
	return err
}

// int64 reads a number that is an integer in range, or null (reporting
// false).
func (d *configDecoder) int64() (int64, bool, error) {
	data := d.data
	start := d.pos
	i := d.pos
	switch c := data[i]; {
	case c == 'n':
		return 0, false, d.null()
	case c == '-' || '0' <= c && c <= '9':
	default:
		return 0, false, d.typeErr("integer")
	}
	neg := data[i] == '-'
	if neg {
		i++
	}
	if i >= len(data) || data[i] < '0' || data[i] > '9' {
		d.pos = i
		return 0, false, d.syntaxErr("in numeric literal")
	}
	var u uint64
	over := false
	if data[i] == '0' {
		i++
	} else {
		for ; i < len(data) && '0' <= data[i] && data[i] <= '9'; i++ {
			if u > (1<<63)/10 {
				over = true // more than 1<<63 after this digit
			}
			u = u*10 + uint64(data[i]-'0')
		}
	}
	if i < len(data) && (data[i] == '.' || data[i] == 'e' || data[i] == 'E') {
		return 0, false, d.errAt(start, "number is not an integer", nil)
	}
	if over || !neg && u > 1<<63-1 || neg && u > 1<<63 {
		return 0, false, d.errAt(start, "number out of range of int64", nil)
	}
	d.pos = i
	if neg {
		return -int64(u), true, nil
	}
	return int64(u), true, nil
}

// time decodes a time (a string, or null which leaves *t as it is) with
// (*time.Time).UnmarshalJSON, as encoding/json does.
func (d *configDecoder) time(t *time.Time) error {
	switch d.peek() {
	case '"':
	case 'n':
		return d.null()
	default:
		return d.typeErr("time string")
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
	data := d.data
	i := d.pos
	if data[i] == '-' {
		i++
	}
	switch {
	case i >= len(data) || data[i] < '0' || data[i] > '9':
		d.pos = i
		return d.syntaxErr("in numeric literal")
	case data[i] == '0':
		i++
	default:
		i = skipDigits(data, i)
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			d.pos = i
			return d.syntaxErr("after decimal point in numeric literal")
		}
		i = skipDigits(data, i)
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			d.pos = i
			return d.syntaxErr("in exponent of numeric literal")
		}
		i = skipDigits(data, i)
	}
	d.pos = i
	return nil
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && '0' <= data[i] && data[i] <= '9' {
		i++
	}
	return i
}

// skip moves past a value of no field, checking it. depth is the number
// of arrays and objects the value is in.
func (d *configDecoder) skip(depth int) error {
	stack := d.stack[:0]
	defer func() { d.stack = stack[:0] }()
	for {
		// A value starts here.
		d.ws()
		if d.pos >= len(d.data) {
			return d.syntaxErr("")
		}
		switch c := d.data[d.pos]; c {
		case '{', '[':
			depth++
			if depth > maxNestingDepth {
				return d.errAt(d.pos, "exceeded max depth", nil)
			}
			d.pos++
			d.ws()
			if d.pos < len(d.data) && d.data[d.pos] == c+2 { // '}' or ']'
				d.pos++
				depth--
				break
			}
			stack = append(stack, c)
			if c == '{' {
				if err := d.skipKey(); err != nil {
					return err
				}
			}
			continue
		case '"':
			if _, err := d.scanString(); err != nil {
				return err
			}
		case 't':
			if err := d.literal("true"); err != nil {
				return err
			}
		case 'f':
			if err := d.literal("false"); err != nil {
				return err
			}
		case 'n':
			if err := d.null(); err != nil {
				return err
			}
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			if err := d.scanNumber(); err != nil {
				return err
			}
		default:
			return d.syntaxErr("looking for beginning of value")
		}
		// A value ended: close what it ends, up to the next value.
		for {
			if len(stack) == 0 {
				return nil
			}
			d.ws()
			if d.pos >= len(d.data) {
				return d.syntaxErr("")
			}
			open := stack[len(stack)-1]
			c := d.data[d.pos]
			if c == open+2 {
				d.pos++
				stack = stack[:len(stack)-1]
				depth--
				continue
			}
			if c != ',' {
				if open == '{' {
					return d.syntaxErr("after object key:value pair")
				}
				return d.syntaxErr("after array element")
			}
			d.pos++
			if open == '{' {
				d.ws()
				if err := d.skipKey(); err != nil {
					return err
				}
			}
			break
		}
	}
}

// skipKey moves past an object key and its ':'.
func (d *configDecoder) skipKey() error {
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return d.syntaxErr("looking for beginning of object key string")
	}
	if _, err := d.scanString(); err != nil {
		return err
	}
	d.ws()
	if d.pos >= len(d.data) || d.data[d.pos] != ':' {
		return d.syntaxErr("after object key")
	}
	d.pos++
	return nil
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

func (d *configDecoder) errAt(off int, what string, err error) error {
	return &configJSONError{Offset: off, What: what, Err: err}
}

// syntaxErr reports the byte at d.pos, in context, or the end of input.
func (d *configDecoder) syntaxErr(context string) error {
	if d.pos >= len(d.data) {
		return d.errAt(d.pos, "unexpected end of JSON input", nil)
	}
	what := "invalid character " + quoteChar(d.data[d.pos])
	if context != "" {
		what += " " + context
	}
	return d.errAt(d.pos, what, nil)
}

// typeErr reports a value of the wrong kind where want is expected, or a
// byte that starts no value.
func (d *configDecoder) typeErr(want string) error {
	var kind string
	switch d.peek() {
	case '{':
		kind = "object"
	case '[':
		kind = "array"
	case '"':
		kind = "string"
	case 't', 'f':
		kind = "bool"
	case 'n':
		kind = "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		kind = "number"
	default:
		return d.syntaxErr("looking for beginning of value")
	}
	return d.errAt(d.pos, "cannot decode "+kind+" as "+want, nil)
}

// quoteChar formats c as encoding/json's errors do.
func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}
