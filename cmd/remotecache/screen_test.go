package main

import (
	"strconv"
	"strings"
	"testing"
)

// screen is as much of a terminal as the bars use: text, carriage return,
// newline, cursor up (CSI n A), erase below (CSI J), hide and show the
// cursor (CSI ?25l, CSI ?25h). Other escape sequences are dropped. It
// keeps every frame: what was on the screen before each erase.
type screen struct {
	lines      [][]rune
	row, col   int
	cursorOn   bool
	frames     [][]string
	unexpected []string // escape sequences it does not know
}

func newScreen(text string) *screen {
	s := &screen{lines: [][]rune{nil}, cursorOn: true}
	out := []rune(text)
	for i := 0; i < len(out); i++ {
		switch ch := out[i]; ch {
		case '\r':
			s.col = 0
		case '\n':
			s.row++
			s.col = 0
			if s.row == len(s.lines) {
				s.lines = append(s.lines, nil)
			}
		case 0x1b:
			j := i + 1
			if j >= len(out) || out[j] != '[' {
				continue
			}
			j++
			start := j
			for j < len(out) && (out[j] == '?' || out[j] == ';' || (out[j] >= '0' && out[j] <= '9')) {
				j++
			}
			if j >= len(out) {
				return s
			}
			s.csi(string(out[start:j]), out[j])
			i = j
		default:
			s.put(ch)
		}
	}
	return s
}

func (s *screen) csi(param string, final rune) {
	switch {
	case final == 'A':
		n, err := strconv.Atoi(param)
		if err != nil {
			n = 1
		}
		s.row = max(s.row-n, 0)
	case final == 'J' && (param == "" || param == "0"):
		s.frames = append(s.frames, s.strings())
		s.lines[s.row] = s.lines[s.row][:min(s.col, len(s.lines[s.row]))]
		s.lines = s.lines[:s.row+1]
	case param == "?25" && final == 'l':
		s.cursorOn = false
	case param == "?25" && final == 'h':
		s.cursorOn = true
	default:
		s.unexpected = append(s.unexpected, param+string(final))
	}
}

func (s *screen) put(ch rune) {
	line := s.lines[s.row]
	for len(line) < s.col {
		line = append(line, ' ')
	}
	if s.col < len(line) {
		line[s.col] = ch
	} else {
		line = append(line, ch)
	}
	s.lines[s.row] = line
	s.col++
}

func (s *screen) strings() []string {
	lines := make([]string, len(s.lines))
	for i, l := range s.lines {
		lines[i] = string(l)
	}
	return lines
}

// text is what is on the screen at the end.
func (s *screen) text() string { return strings.Join(s.strings(), "\n") }

// allFrames is every frame and the screen at the end.
func (s *screen) allFrames() [][]string { return append(s.frames, s.strings()) }

func TestScreen(t *testing.T) {
	s := newScreen("\x1b[?25la\nb\nc\n\x1b[2A\x1b[Jx\ny\r\nz\x1b[?25h")
	if got, want := s.text(), "a\nx\ny\nz"; got != want || !s.cursorOn || len(s.frames) != 1 || len(s.unexpected) != 0 {
		t.Errorf("screen %q, cursor %v, %d frames, unexpected %q; want %q", got, s.cursorOn, len(s.frames), s.unexpected, want)
	}
}
