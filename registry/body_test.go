package registry

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// readBody trusts no declared length: a body shorter or longer than its
// Content-Length is read as it is, and the bound holds either way.
func TestReadBody(t *testing.T) {
	for _, c := range []struct {
		name     string
		body     string
		declared int64
		max      int64
		tooBig   bool
	}{
		{"declared", "abcdef", 6, 10, false},
		{"unknown length", "abcdef", -1, 10, false},
		{"shorter than declared", "abc", 6, 10, false},
		{"longer than declared", "abcdefgh", 4, 10, false},
		{"declared over the bound", "abcdefghijkl", 12, 10, true},
		{"longer than declared and over the bound", "abcdefghijkl", 4, 10, true},
		{"empty", "", 0, 10, false},
	} {
		r := httptest.NewRequest(http.MethodPost, "/entries", strings.NewReader(c.body))
		r.ContentLength = c.declared
		got, err := readBody(httptest.NewRecorder(), r, c.max)
		var tooBig *http.MaxBytesError
		if c.tooBig {
			if !errors.As(err, &tooBig) {
				t.Errorf("%s: %q, %v; want a MaxBytesError", c.name, got, err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, []byte(c.body)) {
			t.Errorf("%s: %q, %v", c.name, got, err)
		}
	}
}
