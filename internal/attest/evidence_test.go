package attest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/go-sev-guest/abi"
)

func TestEvidenceRoundTrip(t *testing.T) {
	s := defaultSigner(t)
	key := nodeKey(t)
	snp := snpEvidence(t, s, key, goodBody())
	virt, err := NewVirtualProvider(goodMeasurement, goodHostData).Evidence(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []*Evidence{snp, virt} {
		b, err := MarshalEvidence(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalEvidence(b)
		if err != nil {
			t.Fatalf("%s: %v", e.Platform, err)
		}
		if got.Platform != e.Platform || !bytes.Equal(got.Report, e.Report) || !bytes.Equal(got.CertTable, e.CertTable) {
			t.Fatalf("%s: round trip changed the evidence", e.Platform)
		}
	}
}

func TestEvidenceMangled(t *testing.T) {
	s := defaultSigner(t)
	key := nodeKey(t)
	snp := snpEvidence(t, s, key, goodBody())
	good, err := MarshalEvidence(snp)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(v any) []byte {
		b, err := cbor.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	report := snp.Report
	// A certificate table whose one entry's offset+length wraps in uint32.
	wrap := make([]byte, 2*abi.CertTableEntrySize+8)
	wrap[0] = 1 // non-zero GUID
	binary.LittleEndian.PutUint32(wrap[16:], 0xFFFFFFF8)
	binary.LittleEndian.PutUint32(wrap[20:], 0x10)

	cases := map[string][]byte{
		"empty":             {},
		"truncated":         good[:len(good)-1],
		"trailing byte":     append(bytes.Clone(good), 0),
		"not a map":         enc([]any{"sev-snp", report}),
		"unknown key":       enc(map[int]any{1: "sev-snp", 2: report, 4: 0}),
		"string keys":       enc(map[string]any{"1": "sev-snp", "2": report}),
		"unknown platform":  enc(map[int]any{1: "tdx", 2: report}),
		"short report":      enc(map[int]any{1: "sev-snp", 2: report[:100]}),
		"long report":       enc(map[int]any{1: "sev-snp", 2: append(bytes.Clone(report), 0)}),
		"platform as bytes": enc(map[int]any{1: []byte("sev-snp"), 2: report}),
		"virtual certs":     enc(map[int]any{1: "virtual", 2: report, 3: snp.CertTable}),
		"empty cert table":  enc(map[int]any{1: "sev-snp", 2: report, 3: []byte{}}),
		"wrapping entry":    enc(map[int]any{1: "sev-snp", 2: report, 3: wrap}),
		"short cert table":  enc(map[int]any{1: "sev-snp", 2: report, 3: []byte{1, 2, 3}}),
		"huge cert table":   enc(map[int]any{1: "sev-snp", 2: report, 3: make([]byte, MaxCertTableSize+1)}),
		"tagged":            enc(cbor.Tag{Number: 55799, Content: map[int]any{1: "sev-snp", 2: report}}),
		"non-canonical length": func() []byte {
			// platform text with a 1-byte length argument where 0 fits.
			b := []byte{0xa2, 0x01, 0x78, 0x07}
			b = append(b, "sev-snp"...)
			b = append(b, 0x02, 0x59, 0x04, 0xa0)
			return append(b, report...)
		}(),
		"duplicate key": func() []byte {
			b := []byte{0xa3, 0x01, 0x67}
			b = append(b, "sev-snp"...)
			b = append(b, 0x01, 0x67)
			b = append(b, "sev-snp"...)
			b = append(b, 0x02, 0x59, 0x04, 0xa0)
			return append(b, report...)
		}(),
	}
	for name, b := range cases {
		if _, err := UnmarshalEvidence(b); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrPlatform) {
			t.Errorf("%s: error %v is neither ErrMalformed nor ErrPlatform", name, err)
		}
	}
	if _, err := MarshalEvidence(&Evidence{Platform: PlatformSNP, Report: report[:10]}); err == nil {
		t.Error("MarshalEvidence accepted a short report")
	}
}

func FuzzUnmarshalEvidence(f *testing.F) {
	s := defaultSigner(f)
	key := nodeKey(f)
	virt, err := NewVirtualProvider(goodMeasurement, goodHostData).Evidence(context.Background(), key)
	if err != nil {
		f.Fatal(err)
	}
	vb, err := MarshalEvidence(virt)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(vb)
	certs, err := s.CertTableBytes()
	if err != nil {
		f.Fatal(err)
	}
	sb, err := MarshalEvidence(&Evidence{Platform: PlatformSNP, Report: virt.Report, CertTable: certs})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sb)
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa1, 0x01, 0x67, 's', 'e', 'v', '-', 's', 'n', 'p'})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := UnmarshalEvidence(b)
		if err != nil {
			return
		}
		again, err := MarshalEvidence(e)
		if err != nil {
			t.Fatalf("accepted evidence does not re-encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatal("accepted evidence re-encodes differently")
		}
		// Whatever decodes must be safe to verify.
		_, _ = Verify(context.Background(), e, key, Policy{Measurements: [][]byte{goodMeasurement}, AllowVirtual: true, Roots: rootsOf(s)})
	})
}
