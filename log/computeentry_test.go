package log

import (
	"crypto/sha256"
	"testing"

	"github.com/charterlog/charter/cbor"
)

// ComputeEntry hand-encodes its CBOR array; it must equal the library's
// core deterministic encoding at every head-size boundary.
func TestComputeEntryMatchesDeterministicCBOR(t *testing.T) {
	for _, v := range []uint64{0, 1, 23, 24, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1 << 63} {
		d := sha256.Sum256([]byte("body"))
		enc, err := cbor.Marshal([]any{uint8(TxCheckpoint), v, v + 1, d[:]})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ComputeEntry(TxCheckpoint, v, v+1, []byte("body")), sha256.Sum256(enc); got != want {
			t.Errorf("view %d: entry %x, want %x", v, got, want)
		}
	}
}
