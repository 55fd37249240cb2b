package wsrelay

import (
	"testing"
	"unicode/utf8"
)

// TestTextCheck splits valid and invalid text at every byte, and in
// pieces of one byte, and checks the verdict against utf8.Valid.
func TestTextCheck(t *testing.T) {
	cases := []string{
		"", "hello", "κόσμε", "\u00e9\u20ac\U0001f600", "a\U0010ffffb",
		"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64", // a surrogate
		"\xf4\x90\x80\x80",             // above U+10FFFF
		"\xc0\xaf",                     // overlong
		"\xe0\x80\xaf",                 // overlong
		"\x80",                         // a lone continuation byte
		"abc\xe2\x82",                  // ends inside a character
		"\xf0\x9f\x98",                 // ends inside a character
		"\xe2\x82\xac\xff",             // a byte never valid
		"\xed\x9f\xbf",                 // U+D7FF, just below the surrogates
		"\xef\xbf\xbf\xf0\x90\x80\x80", // U+FFFF, U+10000
	}
	for _, s := range cases {
		want := utf8.ValidString(s)
		for cut := 0; cut <= len(s); cut++ {
			var c textCheck
			got := c.add([]byte(s[:cut])) && c.add([]byte(s[cut:])) && c.end()
			if got != want {
				t.Errorf("%q cut at %d: got valid %v, want %v", s, cut, got, want)
			}
		}
		var c textCheck
		got := true
		for i := 0; i < len(s) && got; i++ {
			got = c.add([]byte{s[i]})
		}
		if got = got && c.end(); got != want {
			t.Errorf("%q byte by byte: got valid %v, want %v", s, got, want)
		}
	}
}

// TestTextCheckFailsFast: a piece whose bytes cannot begin valid UTF-8
// fails at once, before the message ends.
func TestTextCheckFailsFast(t *testing.T) {
	for _, p := range []string{"\xed\xa0", "\xf4\x90", "\xe0\x80", "\xc0", "ok\xff", "\xf5"} {
		var c textCheck
		if c.add([]byte(p)) {
			t.Errorf("%q: got may be valid, want invalid at once", p)
		}
	}
}
