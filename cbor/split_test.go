package cbor_test

import (
	"bytes"
	"testing"

	"github.com/charterlog/charter/cbor"
)

func TestSplit(t *testing.T) {
	enc := func(v any) []byte {
		b, err := cbor.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, v := range []any{
		uint64(0), int64(-1000), "text", bytes.Repeat([]byte{7}, 300), 1.5, true, nil,
		[]any{[]byte("a"), map[string]any{"k": []any{1, 2, cbor.Tag{Number: 1, Content: 3}}}},
		map[int64]any{1: -7, 4: []byte("kid")},
	} {
		item := enc(v)
		got, rest, err := cbor.Split(append(bytes.Clone(item), 0x01, 0x02))
		if err != nil || !bytes.Equal(got, item) || !bytes.Equal(rest, []byte{0x01, 0x02}) {
			t.Errorf("Split(%T %v) = %x, %x, %v", v, v, got, rest, err)
		}
	}
	for name, b := range map[string][]byte{
		"empty":              {},
		"truncated string":   {0x43, 0x01},
		"truncated array":    {0x82, 0x01},
		"huge array":         {0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"huge map":           {0xbb, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x01},
		"indefinite array":   {0x9f, 0x01, 0xff},
		"truncated head":     {0x19, 0x01},
		"tag without a body": {0xc1},
	} {
		if _, _, err := cbor.Split(b); err == nil {
			t.Errorf("%s: Split accepted %x", name, b)
		}
	}
	if b, err := cbor.BytesContent([]byte{0x40}); err != nil || b == nil || len(b) != 0 {
		t.Errorf("BytesContent(empty) = %v, %v; want an empty, non-nil slice", b, err)
	}
	if _, err := cbor.BytesContent([]byte{0x42, 0x01, 0x02, 0x03}); err == nil {
		t.Error("BytesContent accepted a string with a byte after it")
	}
}

// FuzzSplit: Split never panics, and on any item the policy accepts it
// finds exactly that item, whatever follows it.
func FuzzSplit(f *testing.F) {
	for _, s := range [][]byte{{0x00}, {0x82, 0x01, 0x41, 0x02}, {0xa1, 0x01, 0x26}, {0xd2, 0x84, 0x43, 0xa1, 0x01, 0x26, 0xa0, 0xf6, 0x41, 0x00}, {0xfb, 0, 0, 0, 0, 0, 0, 0, 0}} {
		f.Add(s, []byte{0x01})
	}
	f.Fuzz(func(t *testing.T, b, tail []byte) {
		_, _, _ = cbor.Split(b)
		if cbor.Wellformed(b) != nil {
			return
		}
		item, rest, err := cbor.Split(append(bytes.Clone(b), tail...))
		if err != nil || !bytes.Equal(item, b) || !bytes.Equal(rest, tail) {
			t.Fatalf("Split(%x ‖ %x) = %x, %x, %v", b, tail, item, rest, err)
		}
	})
}
