package app

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// RFC 5649 §6's known answers: AES Key Wrap with Padding must produce
// these bytes, not merely undo itself (a wrap and an unwrap wrong in the
// same way would pass a round trip, and CCF would not unwrap our keys).
func TestAESKeyWrapPaddedKnownAnswers(t *testing.T) {
	h := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	kek := h("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
	for _, tc := range []struct{ key, wrapped string }{
		{"c37b7e6492584340bed12207808941155068f738", "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"},
		{"466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"},
	} {
		got, err := aesKWPWrap(kek, h(tc.key))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, h(tc.wrapped)) {
			t.Errorf("wrap of %s: %x, want %s", tc.key, got, tc.wrapped)
		}
		back, err := aesKWPUnwrap(kek, h(tc.wrapped))
		if err != nil || !bytes.Equal(back, h(tc.key)) {
			t.Errorf("unwrap of %s: %x, %v; want %s", tc.wrapped, back, err, tc.key)
		}
		bad := h(tc.wrapped)
		bad[len(bad)-1] ^= 1
		if _, err := aesKWPUnwrap(kek, bad); err == nil {
			t.Errorf("unwrap of a damaged %s succeeded", tc.wrapped)
		}
	}
}
