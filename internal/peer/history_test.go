package peer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// An answer decodes to what was encoded, and one that breaks a bound or
// its framing is refused before anything is allocated for it.
func TestHistoryAnswer(t *testing.T) {
	proof := []tlog.Hash{{1}, {2}, {3}}
	recs := [][]byte{[]byte("a"), []byte("bb"), []byte("ccc"), []byte("dddd")}
	body := encodeHistory(2, proof, recs)
	level, gotProof, gotRecs, err := decodeHistory(body)
	if err != nil || level != 2 || len(gotProof) != 3 || gotProof[2] != proof[2] || len(gotRecs) != 4 || !bytes.Equal(gotRecs[3], recs[3]) {
		t.Fatalf("round trip: level %d, %d hashes, %d records, %v", level, len(gotProof), len(gotRecs), err)
	}
	head := func(level, proofs, records uint64) []byte {
		b := []byte(historyMagic)
		b = binary.AppendUvarint(b, level)
		b = binary.AppendUvarint(b, proofs)
		b = append(b, make([]byte, 32*min(proofs, 64))...)
		return binary.AppendUvarint(b, records)
	}
	for name, b := range map[string][]byte{
		"no header":          []byte("CHARTER-HISTORY-0\n"),
		"level too high":     head(13, 0, 1<<13),
		"too many hashes":    head(0, 65, 1),
		"count not 2^level":  head(2, 0, 3),
		"record too long":    binary.AppendUvarint(head(0, 0, 1), 1<<40),
		"record cut short":   append(binary.AppendUvarint(head(0, 0, 1), 10), "short"...),
		"bytes after":        append(encodeHistory(0, nil, [][]byte{[]byte("x")}), 0),
		"truncated":          body[:len(body)-1],
		"empty":              nil,
		"records short of 4": head(2, 0, 4),
	} {
		if _, _, _, err := decodeHistory(b); !errors.Is(err, errHistoryAnswer) {
			t.Errorf("%s: %v, want errHistoryAnswer", name, err)
		}
	}
}

// A peer's answer is read within its bounds whatever it holds: no panic,
// and what decodes survives encoding and decoding again unchanged.
func FuzzDecodeHistory(f *testing.F) {
	f.Add(encodeHistory(2, []tlog.Hash{{1}, {2}}, [][]byte{[]byte("a"), nil, []byte("ccc"), []byte("d")}))
	f.Add(encodeHistory(0, nil, [][]byte{[]byte("x")}))
	f.Add([]byte(historyMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		level, proof, recs, err := decodeHistory(b)
		if err != nil {
			return
		}
		l2, p2, r2, err := decodeHistory(encodeHistory(level, proof, recs))
		if err != nil || l2 != level || len(p2) != len(proof) || len(r2) != len(recs) {
			t.Fatalf("re-encoded answer: level %d, %d hashes, %d records, %v", l2, len(p2), len(r2), err)
		}
		for i := range recs {
			if !bytes.Equal(r2[i], recs[i]) {
				t.Fatalf("record %d changed", i)
			}
		}
	})
}
