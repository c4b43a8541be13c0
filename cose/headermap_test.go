package cose

import (
	"bytes"
	"testing"
)

// decodeHeaderMap reads labels itself: the cases the library's decoder
// used to decide must come out the same.
func TestDecodeHeaderMap(t *testing.T) {
	m, err := decodeHeaderMap([]byte{0xa4, 0x01, 0x26, 0x20, 0x41, 0x07, 0x61, 0x31, 0xf5, 0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m[int64(1)], []byte{0x26}) || !bytes.Equal(m[int64(-1)], []byte{0x41, 0x07}) || !bytes.Equal(m["1"], []byte{0xf5}) || !bytes.Equal(m[int64(-1<<63)], []byte{0x80}) {
		t.Fatalf("decoded %v", m)
	}
	for name, raw := range map[string][]byte{
		"duplicate label":               {0xa2, 0x01, 0x26, 0x01, 0x27},
		"duplicate, one not shortest":   {0xa2, 0x01, 0x26, 0x18, 0x01, 0x27},
		"label beyond int64":            {0xa1, 0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x01},
		"negative label beyond int64":   {0xa1, 0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x01},
		"byte string label":             {0xa1, 0x41, 0x01, 0x01},
		"trailing byte":                 {0xa1, 0x01, 0x26, 0x00},
		"indefinite map":                {0xbf, 0x01, 0x26, 0xff},
		"truncated value":               {0xa1, 0x01, 0x42, 0x00},
		"invalid UTF-8 label":           {0xa1, 0x61, 0xff, 0x01},
		"not a map":                     {0x80},
		"duplicate text, same bytes":    {0xa2, 0x61, 0x61, 0x01, 0x61, 0x61, 0x02},
		"map claiming more than it has": {0xb9, 0xff, 0xff, 0x01, 0x26},
	} {
		if m, err := decodeHeaderMap(raw); err == nil {
			t.Errorf("%s: accepted as %v", name, m)
		}
	}
}
