package cose

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParseStatement: ParseStatement and ParseSign1 never panic; when input
// parses, LeafEntry is deterministic, re-parsing Raw gives the same fields,
// and Verify and VerifyPayload return (they may fail) without panicking.
//
// Seeds: testdata/fuzz/FuzzParseStatement (small statements copied from
// the interop data and made by SignStatement) plus, when present, the
// interop statements themselves.
func FuzzParseStatement(f *testing.F) {
	for _, pattern := range []string{
		filepath.Join(stmtInteropDir, "scitt-cose-v1", "v1", "*", "statement.cose"),
		filepath.Join(stmtInteropDir, "scitt-ccf-ledger", "test", "payloads", "*.cose"),
	} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, parse := range []func([]byte, ParseOptions) (*Statement, error){ParseStatement, ParseSign1} {
			s, err := parse(b, ParseOptions{})
			if err != nil {
				if s != nil {
					t.Fatal("non-nil statement with an error")
				}
				continue
			}
			if !bytes.Equal(s.Raw, b) {
				t.Fatal("Raw differs from the input")
			}
			le := s.LeafEntry()
			if s.LeafEntry() != le {
				t.Fatal("LeafEntry is not deterministic")
			}
			again, err := parse(append([]byte(nil), s.Raw...), ParseOptions{})
			if err != nil {
				t.Fatalf("re-parse failed: %v", err)
			}
			if again.LeafEntry() != le {
				t.Fatal("re-parse changed LeafEntry")
			}
			again.Raw, s.Raw = nil, nil
			// Certificates are compared by DER (X5Chain); parsed copies hold pointers.
			again.Chain, s.Chain = nil, nil
			if !reflect.DeepEqual(s, again) {
				t.Fatalf("re-parse changed fields:\n%+v\n%+v", s, again)
			}
			s.Verify(VerifyOptions{SkipChainTime: true})
			s.VerifyPayload(s.Payload)
		}
	})
}
