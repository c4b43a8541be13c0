package log

import (
	"bytes"
	"testing"
)

func sampleAppTx() *AppTx {
	var d MapDigester
	d.Add([]byte("k"), []byte("v"))
	return &AppTx{
		Writes:       []Write{{Map: "private:0011", Key: []byte{1, 2}, Value: []byte("sealed")}, {Map: "public:app.x", Key: []byte("k"), Delete: true}},
		Reads:        []Read{{Map: "public:app.x", Key: []byte("k"), Digest: ValueDigest([]byte("v"), true)}, {Map: "public:app.y", Scan: true, Digest: d.Sum()}},
		ClaimsDigest: bytes.Repeat([]byte{9}, 32),
		Nonce:        []byte("0123456789abcdef"),
	}
}

func TestAppTxRoundTrip(t *testing.T) {
	b, err := MarshalAppTx(sampleAppTx())
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalAppTx(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	b2, _ := MarshalAppTx(got)
	if !bytes.Equal(b, b2) {
		t.Fatal("an app transaction does not re-encode identically")
	}
	for name, bad := range map[string]func(*AppTx){
		"no writes":        func(a *AppTx) { a.Writes = nil },
		"short claims":     func(a *AppTx) { a.ClaimsDigest = []byte{1} },
		"scan with a key":  func(a *AppTx) { a.Reads[1].Key = []byte("k") },
		"read without map": func(a *AppTx) { a.Reads[0].Map = "" },
		"long nonce":       func(a *AppTx) { a.Nonce = make([]byte, 33) },
	} {
		a := sampleAppTx()
		bad(a)
		if a.Validate() == nil {
			t.Errorf("%s: valid", name)
		}
	}
	if ValueDigest(nil, false) != ([32]byte{}) || ValueDigest(nil, true) == ValueDigest(nil, false) {
		t.Fatal("an absent value and an empty one must differ")
	}
}

// App transactions arrive from the leader in raft entries: decoding never
// panics, and what decodes and validates re-encodes to the same bytes.
func FuzzUnmarshalAppTx(f *testing.F) {
	b, _ := MarshalAppTx(sampleAppTx())
	f.Add(b)
	f.Add([]byte{0x84, 0x80, 0x80, 0x40, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := UnmarshalAppTx(b)
		if err != nil || a.Validate() != nil {
			return
		}
		again, err := MarshalAppTx(a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := UnmarshalAppTx(again); err != nil {
			t.Fatalf("re-encoded transaction does not decode: %v", err)
		}
	})
}
