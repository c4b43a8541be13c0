package policy

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestJSONTooDeep(t *testing.T) {
	for _, c := range []struct {
		s    string
		max  int
		deep bool
	}{
		{`[]`, 1, false},
		{`[[]]`, 1, true},
		{`{"a":{"b":[1]}}`, 3, false},
		{`{"a":{"b":[1]}}`, 2, true},
		{`["[[[[[", "\"[[[[", "\\", "{{{{"]`, 1, false},
		{`"\\\"[[["`, 0, false},
		{`[[]][[]]`, 2, false}, // invalid, but never two deep
		{`]]]][[`, 1, false},   // the parser stops at the first "]"
		{strings.Repeat("[", 3_000_000), MaxJSONDepth, true},
	} {
		if got := jsonTooDeep(c.s, c.max); got != c.deep {
			t.Errorf("jsonTooDeep(%.40q, %d) = %v, want %v", c.s, c.max, got, c.deep)
		}
	}
}

// jsonDepth is the nesting of a value decoded by encoding/json.
func jsonDepth(v any) int {
	d := 0
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			d = max(d, jsonDepth(e))
		}
		return d + 1
	case map[string]any:
		for _, e := range x {
			d = max(d, jsonDepth(e))
		}
		return d + 1
	}
	return 0
}

// FuzzJSONTooDeep checks the scan against encoding/json on every text that
// parses: the scan must report exactly the text's nesting (never less,
// which would let deep text through; never more, which would refuse good
// text).
func FuzzJSONTooDeep(f *testing.F) {
	for _, s := range []string{`[]`, `{"a":[{"b":"]\"["}]}`, `"\\"`, `[[[["\u005b"]]]]`, `[1,[2,[3]],{"x":{}}]`, `"[`, `[\"]`} {
		f.Add(s, 2)
	}
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 64 {
			return
		}
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			// Text that does not parse: the scan must not crash, and
			// the parser fails on it whatever the scan says.
			jsonTooDeep(s, max)
			return
		}
		if got, want := jsonTooDeep(s, max), jsonDepth(v) > max; got != want {
			t.Errorf("jsonTooDeep(%q, %d) = %v, but its depth is %d", s, max, got, jsonDepth(v))
		}
	})
}
