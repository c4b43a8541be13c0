package log_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	mathrand "math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/charterlog/charter/cbor"
	clog "github.com/charterlog/charter/log"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []*clog.Record{
		{Type: clog.TxRegistration, View: 2, Seqno: 19, Entry: sha256.Sum256([]byte("x")), Body: []byte("statement")},
		{Type: clog.TxGenesis, View: 1, Seqno: 1, Body: []byte{}},
		{Type: clog.TxCheckpoint, View: 1<<64 - 1, Seqno: 1<<64 - 1, Body: bytes.Repeat([]byte{0xa5}, 70000)},
	} {
		b, err := clog.MarshalRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := clog.UnmarshalRecord(b)
		if err != nil {
			t.Fatalf("UnmarshalRecord(MarshalRecord(%v)): %v", r.TxID(), err)
		}
		if got.Type != r.Type || got.View != r.View || got.Seqno != r.Seqno || got.Entry != r.Entry || !bytes.Equal(got.Body, r.Body) {
			t.Fatalf("round trip: got %+v, want %+v", got, r)
		}
		if got.TxID() != (clog.TxID{View: r.View, Seqno: r.Seqno}) {
			t.Fatalf("TxID = %v", got.TxID())
		}
		b2, _ := clog.MarshalRecord(got)
		if !bytes.Equal(b, b2) {
			t.Fatal("re-encoding a decoded record changed its bytes")
		}
		rejectsTruncations(t, "record", b, func(b []byte) error { _, err := clog.UnmarshalRecord(b); return err })
	}
}

func TestBatchRoundTrip(t *testing.T) {
	b := &clog.Batch{Proposals: []clog.Proposal{
		{Type: clog.TxRegistration, Entry: sha256.Sum256([]byte("a")), Body: []byte("stmt a")},
		{Type: clog.TxCheckpoint, Body: []byte{1, 2, 3}},
		{Type: clog.TxRegistration, Entry: sha256.Sum256([]byte("b")), Body: []byte{}},
	}}
	enc, err := clog.MarshalBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := clog.UnmarshalBatch(enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Proposals) != len(b.Proposals) {
		t.Fatalf("%d proposals, want %d", len(got.Proposals), len(b.Proposals))
	}
	for i, p := range got.Proposals {
		w := b.Proposals[i]
		if p.Type != w.Type || p.Entry != w.Entry || !bytes.Equal(p.Body, w.Body) {
			t.Fatalf("proposal %d: got %+v, want %+v", i, p, w)
		}
		if !bytes.Equal(enc[p.BodyAt:p.BodyAt+len(p.Body)], w.Body) || (len(p.Body) > 0 && &enc[p.BodyAt] != &p.Body[0]) {
			t.Fatalf("proposal %d: BodyAt %d does not locate its body in the batch", i, p.BodyAt)
		}
	}
	rejectsTruncations(t, "batch", enc, func(b []byte) error { _, err := clog.UnmarshalBatch(b); return err })
}

func TestCheckpointRoundTrip(t *testing.T) {
	c := &clog.Checkpoint{
		TreeSize: 12345, Root: sha256.Sum256([]byte("root")), IssuedAt: 1767225600,
		Protected: []byte{0xa1, 0x01, 0x26}, Signature: bytes.Repeat([]byte{7}, 64), Note: []byte("origin\n12345\nAAAA\n\n— sig\n"),
	}
	enc, err := clog.MarshalCheckpoint(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := clog.UnmarshalCheckpoint(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip: got %+v, want %+v", got, c)
	}
	rejectsTruncations(t, "checkpoint", enc, func(b []byte) error { _, err := clog.UnmarshalCheckpoint(b); return err })
}

// rejectsTruncations checks that every proper prefix of enc, enc with a
// trailing byte, and some garbage are refused (and nothing panics).
func rejectsTruncations(t *testing.T, what string, enc []byte, unmarshal func([]byte) error) {
	t.Helper()
	for i := 0; i < len(enc); i++ {
		if unmarshal(enc[:i]) == nil {
			t.Fatalf("%s truncated to %d of %d bytes decodes", what, i, len(enc))
		}
	}
	if unmarshal(append(append([]byte(nil), enc...), 0x00)) == nil {
		t.Fatalf("%s with a trailing byte decodes", what)
	}
	for _, g := range [][]byte{
		nil, {0xff}, {0x80}, {0xa0}, {0x9f, 0xff}, []byte("garbage"),
		{0x85, 0x02, 0x01, 0x01, 0x58, 0x20},                   // array header then a short byte string
		{0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // 2^64-1 elements
	} {
		if unmarshal(g) == nil {
			t.Fatalf("%s: garbage %x decodes", what, g)
		}
	}
}

func TestComputeEntry(t *testing.T) {
	base := clog.ComputeEntry(clog.TxCheckpoint, 3, 42, []byte("body"))
	if again := clog.ComputeEntry(clog.TxCheckpoint, 3, 42, []byte("body")); again != base {
		t.Fatal("ComputeEntry is not deterministic")
	}
	// The documented formula: SHA-256 of CBOR [type, view, seqno, SHA-256(body)].
	bd := sha256.Sum256([]byte("body"))
	enc := append([]byte{0x84, 0x03, 0x03, 0x18, 0x2a, 0x58, 0x20}, bd[:]...)
	if want := sha256.Sum256(enc); base != want {
		t.Fatalf("ComputeEntry = %x, want SHA-256 of %x = %x", base, enc, want)
	}
	for name, e := range map[string][32]byte{
		"type":  clog.ComputeEntry(clog.TxGenesis, 3, 42, []byte("body")),
		"view":  clog.ComputeEntry(clog.TxCheckpoint, 4, 42, []byte("body")),
		"seqno": clog.ComputeEntry(clog.TxCheckpoint, 3, 43, []byte("body")),
		"body":  clog.ComputeEntry(clog.TxCheckpoint, 3, 42, []byte("bodY")),
		"empty": clog.ComputeEntry(clog.TxCheckpoint, 3, 42, nil),
		"swap":  clog.ComputeEntry(clog.TxCheckpoint, 42, 3, []byte("body")),
	} {
		if e == base {
			t.Errorf("changing %s does not change the entry", name)
		}
	}
}

func TestTxTypeString(t *testing.T) {
	for tt, want := range map[clog.TxType]string{clog.TxGenesis: "genesis", clog.TxRegistration: "registration", clog.TxCheckpoint: "checkpoint", 9: "type(9)"} {
		if got := tt.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", tt, got, want)
		}
	}
}

func TestParseTxID(t *testing.T) {
	for _, s := range []string{"2.19", "1.1", "18446744073709551615.18446744073709551615"} {
		id, err := clog.ParseTxID(s)
		if err != nil {
			t.Errorf("ParseTxID(%q): %v", s, err)
			continue
		}
		if id.String() != s {
			t.Errorf("ParseTxID(%q).String() = %q", s, id.String())
		}
	}
	if id, _ := clog.ParseTxID("2.19"); id != (clog.TxID{View: 2, Seqno: 19}) {
		t.Errorf("ParseTxID(2.19) = %+v", id)
	}
	for _, s := range []string{
		"", ".", "1.", ".1", "01.2", "1.02", "-1.2", "+1.2", "1.-2", "1.+2", "1.2.3", "0.1", "1.0", "0.0",
		" 1.2", "1.2 ", "1 .2", "1. 2", "12", "1,2", "0x1.2", "1.2\n", "１.2",
		"18446744073709551616.1", "1.18446744073709551616", // 2^64
		"99999999999999999999.1", "1.99999999999999999999", // 20 digits, overflow
		"123456789012345678901.1", "1.123456789012345678901", // 21 digits
		strings.Repeat("9", 40) + ".1",
	} {
		if id, err := clog.ParseTxID(s); !errors.Is(err, clog.ErrBadTxID) {
			t.Errorf("ParseTxID(%q) = %v, %v; want ErrBadTxID", s, id, err)
		}
	}
}

func TestTxIDStringRoundTrip(t *testing.T) {
	for _, id := range []clog.TxID{{1, 1}, {2, 19}, {1 << 32, 7}, {1<<64 - 1, 1}} {
		got, err := clog.ParseTxID(id.String())
		if err != nil || got != id {
			t.Errorf("ParseTxID(%q) = %v, %v; want %v", id.String(), got, err, id)
		}
	}
}

// PeekSeqno reads what UnmarshalRecord would, from the head alone, and
// refuses what is not a record.
func TestPeekSeqno(t *testing.T) {
	for _, seqno := range []uint64{1, 23, 24, 255, 256, 65535, 65536, 1 << 32, 1<<63 + 5} {
		b, err := clog.MarshalRecord(&clog.Record{Type: clog.TxCheckpoint, View: 300, Seqno: seqno, Body: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := clog.PeekSeqno(b); !ok || got != seqno {
			t.Errorf("seqno %d: peeked %d, %v", seqno, got, ok)
		}
		for n := range 6 {
			if _, ok := clog.PeekSeqno(b[:n]); ok && n < 4 {
				t.Errorf("seqno %d: a record cut to %d bytes peeked", seqno, n)
			}
		}
	}
	for _, b := range [][]byte{nil, {0x85, 1, 1, 1}, {0x86, 0x41, 0, 1, 1}, {0xa6}, {0x86, 1, 1, 0x9f}} {
		if _, ok := clog.PeekSeqno(b); ok {
			t.Errorf("%x peeked as a record", b)
		}
	}
}

// FuzzPeekSeqno: the seqno peeked from a record's head is the one a full
// decode finds, whenever the bytes decode as a record.
func FuzzPeekSeqno(f *testing.F) {
	for _, s := range []uint64{1, 24, 1 << 40} {
		b, _ := clog.MarshalRecord(&clog.Record{Type: clog.TxRegistration, View: 2, Seqno: s, Body: []byte("b")})
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		peeked, ok := clog.PeekSeqno(b)
		rec, err := clog.UnmarshalRecord(b)
		if err == nil && (!ok || peeked != rec.Seqno) {
			t.Fatalf("a record of seqno %d peeked as %d, %v", rec.Seqno, peeked, ok)
		}
	})
}

// MarshalRecord and MarshalBatch write their CBOR by hand, for speed on
// the apply path; every node must write the same bytes, so they must be
// exactly what the reflective encoder gives, and UnmarshalBatch must read
// back what either wrote.
func TestHandEncodingsMatchTheEncoder(t *testing.T) {
	rng := mathrand.New(mathrand.NewPCG(1, 2))
	body := func() []byte {
		switch rng.IntN(4) {
		case 0:
			return nil
		case 1:
			return []byte{}
		}
		b := make([]byte, rng.IntN(70000))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	hash := func() (h [32]byte) {
		for i := range h {
			h[i] = byte(rng.Uint32())
		}
		return h
	}
	num := func() uint64 { return rng.Uint64() >> rng.IntN(64) }
	for range 300 {
		r := &clog.Record{Type: clog.TxType(rng.IntN(256)), View: num(), Seqno: num(), Entry: hash(), Body: body(), Policy: hash()}
		got, err := clog.MarshalRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		want, err := cbor.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("MarshalRecord(%+v) = %x…, the encoder gives %x…", r.TxID(), got[:min(40, len(got))], want[:min(40, len(want))])
		}
		back, err := clog.UnmarshalRecord(got)
		if err != nil || back.Seqno != r.Seqno || !bytes.Equal(back.Body, r.Body) {
			t.Fatalf("UnmarshalRecord: %v", err)
		}
	}
	for range 100 {
		var b clog.Batch
		if n := rng.IntN(6); n > 0 || rng.IntN(2) == 0 {
			b.Proposals = make([]clog.Proposal, n)
		}
		for i := range b.Proposals {
			b.Proposals[i] = clog.Proposal{Type: clog.TxType(rng.IntN(256)), Entry: hash(), Body: body(), Policy: hash()}
		}
		got, err := clog.MarshalBatch(&b)
		if err != nil {
			t.Fatal(err)
		}
		want, err := cbor.Marshal(&b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("MarshalBatch = %x…, the encoder gives %x…", got[:min(40, len(got))], want[:min(40, len(want))])
		}
		back, err := clog.UnmarshalBatch(got)
		if err != nil {
			t.Fatal(err)
		}
		if len(back.Proposals) != len(b.Proposals) || (back.Proposals == nil) != (b.Proposals == nil) {
			t.Fatalf("UnmarshalBatch: %d proposals, want %d", len(back.Proposals), len(b.Proposals))
		}
		for i, p := range b.Proposals {
			q := back.Proposals[i]
			if q.Type != p.Type || q.Entry != p.Entry || q.Policy != p.Policy || !bytes.Equal(q.Body, p.Body) || (q.Body == nil) != (p.Body == nil) {
				t.Fatalf("proposal %d read back differs", i)
			}
		}
	}
}

func TestUnmarshalBatchRefuses(t *testing.T) {
	good, _ := clog.MarshalBatch(&clog.Batch{Proposals: []clog.Proposal{{Type: clog.TxRegistration, Body: []byte("s")}}})
	for name, b := range map[string][]byte{
		"empty":             {},
		"trailing byte":     append(bytes.Clone(good), 0),
		"not an array":      {0xa0},
		"array of two":      {0x82, 0x80, 0x80},
		"proposal of three": {0x81, 0x81, 0x83, 0x01, 0x40, 0x40},
		"short entry":       {0x81, 0x81, 0x84, 0x01, 0x41, 0x00, 0x40, 0x40},
		"type too large":    append([]byte{0x81, 0x81, 0x84, 0x19, 0x01, 0x00}, good[4:]...),
		"body as text":      {0x81, 0x81, 0x84, 0x01, 0x58, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x61, 0x61},
	} {
		if _, err := clog.UnmarshalBatch(b); err == nil {
			t.Errorf("%s: accepted %x", name, b)
		}
	}
}

// FuzzUnmarshalBatch: a raft entry's batch never panics the decoder, and
// what it accepts encodes back to a batch that reads the same.
func FuzzUnmarshalBatch(f *testing.F) {
	for _, b := range []clog.Batch{{}, {Proposals: []clog.Proposal{}}, {Proposals: []clog.Proposal{{Type: clog.TxRegistration, Body: []byte("statement")}, {Type: clog.TxCheckpoint}}}} {
		enc, _ := clog.MarshalBatch(&b)
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := clog.UnmarshalBatch(data)
		if err != nil {
			return
		}
		enc, err := clog.MarshalBatch(b)
		if err != nil {
			t.Fatal(err)
		}
		again, err := clog.UnmarshalBatch(enc)
		if err != nil || len(again.Proposals) != len(b.Proposals) {
			t.Fatalf("re-encoded batch: %v", err)
		}
		for i := range b.Proposals {
			if !bytes.Equal(again.Proposals[i].Body, b.Proposals[i].Body) || again.Proposals[i].Entry != b.Proposals[i].Entry {
				t.Fatalf("proposal %d differs after a round trip", i)
			}
		}
	})
}
