package registry_test

import (
	"bytes"
	"testing"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/registry"
)

// FuzzDecodeBatch feeds arbitrary bodies to the batch parser: no panic; a
// body it accepts holds between one and the allowed number of statements,
// each a byte string of the body, and the library's strict decoding of the
// same body finds the same byte strings; a body it refuses is refused with
// one of its two errors. Seeds: testdata/fuzz/FuzzDecodeBatch (valid
// batches, a count beyond the bound, an indefinite array, a tag, deep
// nesting, a truncated string) and the ones added here.
func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte{0x81, 0x40})
	f.Add([]byte{0x82, 0x41, 0x00, 0x42, 0x01, 0x02})
	f.Add(cbor.AppendHead(nil, cbor.MajorArray, 9))
	const max = 8
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := registry.DecodeBatch(body, max)
		if err != nil {
			if !isBatchError(err) {
				t.Fatalf("DecodeBatch: %v is neither InvalidBatch nor BatchTooLarge", err)
			}
			return
		}
		if len(got) == 0 || len(got) > max {
			t.Fatalf("%d statements accepted; want 1 to %d", len(got), max)
		}
		items, err := cbor.DecodeArray(body)
		if err != nil {
			t.Fatalf("DecodeBatch accepted a body the strict decoder refuses: %v", err)
		}
		if len(items) != len(got) {
			t.Fatalf("%d statements, the decoder sees %d items", len(got), len(items))
		}
		for i, it := range items {
			b, err := cbor.DecodeBytes(it)
			if err != nil || !bytes.Equal(b, got[i]) {
				t.Fatalf("statement %d differs from the decoder's byte string (%v)", i, err)
			}
		}
	})
}

func isBatchError(err error) bool {
	p := registry.ProblemFor(err)
	return p.Title == "InvalidBatch" || p.Title == "BatchTooLarge"
}
