package log

import (
	"strings"
	"testing"
)

// TestDecodersAreStrict: every log format decodes under the CBOR policy.
// The formats are arrays, with no map of their own, so a duplicate key can
// only arrive inside one where the format wants something else; the
// decoder refuses it before the type check, and refuses an indefinite-length
// encoding of an otherwise valid value.
func TestDecodersAreStrict(t *testing.T) {
	var m map[int]int
	if err := decMode.Unmarshal([]byte{0xa2, 0x01, 0x02, 0x01, 0x03}, &m); err == nil || !strings.Contains(err.Error(), "duplicate map key") {
		t.Errorf("duplicate map key: %v", err)
	}
	indefinite := func(b []byte) []byte { // array(n) → array(*) … break
		if b[0]&0xe0 != 0x80 || b[0]&0x1f >= 24 {
			t.Fatalf("%x is not a short array", b)
		}
		return append(append([]byte{0x9f}, b[1:]...), 0xff)
	}
	must := func(b []byte, err error) []byte {
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	w := []Write{{Map: "public:m", Key: []byte("k"), Value: []byte("v")}}
	for _, c := range []struct {
		name   string
		b      []byte
		decode func([]byte) error
	}{
		{"record", must(MarshalRecord(&Record{Type: TxWrites, View: 1, Seqno: 2, Body: []byte("b")})),
			func(b []byte) error { _, err := UnmarshalRecord(b); return err }},
		{"batch", must(MarshalBatch(&Batch{Proposals: []Proposal{{Type: TxWrites, Body: []byte("b")}}})),
			func(b []byte) error { _, err := UnmarshalBatch(b); return err }},
		{"checkpoint", must(MarshalCheckpoint(&Checkpoint{TreeSize: 1})),
			func(b []byte) error { _, err := UnmarshalCheckpoint(b); return err }},
		{"write set", must(MarshalWriteSet(&WriteSet{Writes: w})),
			func(b []byte) error { _, err := UnmarshalWriteSet(b); return err }},
		{"app transaction", must(MarshalAppTx(&AppTx{Writes: w})),
			func(b []byte) error { _, err := UnmarshalAppTx(b); return err }},
	} {
		if err := c.decode(c.b); err != nil {
			t.Errorf("%s: canonical encoding refused: %v", c.name, err)
		}
		if err := c.decode(indefinite(c.b)); err == nil || !strings.Contains(err.Error(), "indefinite-length") {
			t.Errorf("%s: indefinite-length encoding: %v", c.name, err)
		}
	}
}

// TestBatchBeyondMessageBounds: a raft batch may hold more proposals than
// the policy's bound for messages from outside (4096); the ledger's bounds
// keep every batch a leader could have written decodable.
func TestBatchBeyondMessageBounds(t *testing.T) {
	b := &Batch{Proposals: make([]Proposal, 5000)}
	for i := range b.Proposals {
		b.Proposals[i] = Proposal{Type: TxRegistration}
	}
	enc, err := MarshalBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalBatch(enc)
	if err != nil || len(got.Proposals) != 5000 {
		t.Fatalf("batch of 5000: %v", err)
	}
}
