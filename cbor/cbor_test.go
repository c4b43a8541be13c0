package cbor_test

import (
	"strings"
	"testing"

	"github.com/charterlog/charter/cbor"
)

// TestPolicyRefuses: each rule of the policy, with the smallest input that
// breaks it, through the default decoder and a derived one.
func TestPolicyRefuses(t *testing.T) {
	nested := func(n int) []byte { // n nested one-element arrays around 0
		b := make([]byte, n+1)
		for i := 0; i < n; i++ {
			b[i] = 0x81
		}
		return b
	}
	bigArray := append([]byte{0x99, 0x10, 0x01}, make([]byte, 4097)...) // array(4097) of 0
	cases := []struct {
		name, want string
		in         []byte
	}{
		{"duplicate map key", "duplicate map key", []byte{0xa2, 0x01, 0x02, 0x01, 0x03}},
		{"indefinite-length array", "indefinite-length", []byte{0x9f, 0x01, 0xff}},
		{"indefinite-length byte string", "indefinite-length", []byte{0x5f, 0x41, 0x00, 0xff}},
		{"invalid UTF-8", "invalid UTF-8", []byte{0x61, 0xff}},
		{"nesting deeper than 16", "exceeded max nested level", nested(17)},
		{"array of 4097", "exceeded max number of elements", bigArray},
		{"byte string longer than the input", "unexpected EOF", []byte{0x5a, 0xff, 0xff, 0xff, 0xff, 0x00}},
		{"trailing bytes", "extraneous data", []byte{0x01, 0x02}},
	}
	modes := map[string]func([]byte) error{
		"Unmarshal": func(b []byte) error { var v any; return cbor.Unmarshal(b, &v) },
		"ledger":    func(b []byte) error { var v any; return cbor.NewDecMode(cbor.LedgerOptions()).Unmarshal(b, &v) },
	}
	for mname, dec := range modes {
		for _, c := range cases {
			if mname == "ledger" && c.name == "array of 4097" {
				continue // the ledger's bound is wider; see TestLedgerOptions
			}
			err := dec(c.in)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %s: got %v, want an error containing %q", mname, c.name, err, c.want)
			}
		}
	}
}

func TestPolicyAccepts(t *testing.T) {
	var m map[any]cbor.RawMessage
	if err := cbor.Unmarshal([]byte{0xa2, 0x01, 0x02, 0x20, 0x03}, &m); err != nil {
		t.Fatal(err)
	}
	// Integer labels decode as int64, positive and negative alike.
	if _, ok := m[int64(1)]; !ok {
		t.Errorf("label 1 is not int64: %v", m)
	}
	if _, ok := m[int64(-1)]; !ok {
		t.Errorf("label -1 is not int64: %v", m)
	}
	var tag cbor.RawTag
	if err := cbor.Unmarshal([]byte{0xd2, 0x80}, &tag); err != nil || tag.Number != 18 {
		t.Errorf("tag 18: %v, %v", tag, err)
	}
}

func TestLedgerOptions(t *testing.T) {
	bigArray := append([]byte{0x99, 0x10, 0x01}, make([]byte, 4097)...)
	var v []int
	if err := cbor.NewDecMode(cbor.LedgerOptions()).Unmarshal(bigArray, &v); err != nil || len(v) != 4097 {
		t.Fatalf("ledger decoder: %d elements, %v", len(v), err)
	}
}

func TestDerivedRefusals(t *testing.T) {
	type s struct {
		A int `cbor:"1,keyasint"`
	}
	unknown := []byte{0xa2, 0x01, 0x01, 0x02, 0x02}
	var v s
	if err := cbor.Unmarshal(unknown, &v); err != nil {
		t.Errorf("policy: unknown field refused: %v", err)
	}
	if err := cbor.NewDecMode(cbor.Options{RefuseUnknownFields: true}).Unmarshal(unknown, &v); err == nil {
		t.Error("RefuseUnknownFields: unknown field accepted")
	}
	var b []byte
	if err := cbor.NewDecMode(cbor.Options{RefuseTags: true}).Unmarshal([]byte{0xc2, 0x41, 0x01}, &b); err == nil {
		t.Error("RefuseTags: tag accepted")
	}
}

// TestMarshalDeterministic: map keys in bytewise order of their encodings,
// shortest heads (RFC 8949 §4.2.1).
func TestMarshalDeterministic(t *testing.T) {
	b, err := cbor.Marshal(map[any]any{"a": 1, int64(-1): 2, int64(10): 3})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0xa3, 0x0a, 0x03, 0x20, 0x02, 0x61, 'a', 0x01}
	if string(b) != string(want) {
		t.Errorf("got %x, want %x", b, want)
	}
}

// TestTypedDecoders: each accepts its one major type and refuses the
// conversions the library would make.
func TestTypedDecoders(t *testing.T) {
	if b, err := cbor.DecodeBytes([]byte{0x40}); err != nil || b == nil || len(b) != 0 {
		t.Errorf("empty bstr: %v, %v", b, err)
	}
	for name, c := range map[string]struct {
		raw []byte
		dec func([]byte) error
	}{
		"text as bytes":     {[]byte{0x61, 'a'}, func(b []byte) error { _, err := cbor.DecodeBytes(b); return err }},
		"nil as bytes":      {[]byte{0xf6}, func(b []byte) error { _, err := cbor.DecodeBytes(b); return err }},
		"bytes as text":     {[]byte{0x41, 'a'}, func(b []byte) error { _, err := cbor.DecodeText(b); return err }},
		"float as int":      {[]byte{0xf9, 0x3c, 0x00}, func(b []byte) error { _, err := cbor.DecodeInt(b); return err }},
		"negative as uint":  {[]byte{0x20}, func(b []byte) error { _, err := cbor.DecodeUint(b); return err }},
		"epoch tag as uint": {[]byte{0xc1, 0x01}, func(b []byte) error { _, err := cbor.DecodeUint(b); return err }},
		"uint beyond int64": {[]byte{0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0}, func(b []byte) error { _, err := cbor.DecodeInt(b); return err }},
		"nil as array":      {[]byte{0xf6}, func(b []byte) error { _, err := cbor.DecodeArray(b); return err }},
		"empty input":       {nil, func(b []byte) error { _, err := cbor.DecodeInt(b); return err }},
	} {
		if err := c.dec(c.raw); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if n, err := cbor.DecodeInt([]byte{0x38, 0x18}); err != nil || n != -25 {
		t.Errorf("-25: %d, %v", n, err)
	}
	if a, err := cbor.DecodeArray([]byte{0x82, 0x01, 0x41, 0x00}); err != nil || len(a) != 2 {
		t.Errorf("array: %v, %v", a, err)
	}
}
