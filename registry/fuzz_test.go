package registry_test

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/registry"
)

// knownTitles are the problem titles the handlers can answer POST /entries
// with (problem.go's table and the handlers' own).
var knownTitles = map[string]bool{
	"PayloadTooLarge": true, "UntaggedCOSESign1": true, "NotCOSESign1": true,
	"InvalidProtectedHeader": true, "MissingCWTClaims": true, "AlgorithmNotAllowed": true,
	"MissingIssuerKey": true, "InvalidCertificateChain": true, "IssuerMismatch": true,
	"UnknownIssuerKey": true, "InvalidSignature": true, "DetachedPayload": true,
	"ServiceUnavailable": true, "NotFound": true, "ClientClosedRequest": true,
	"UnsupportedMediaType": true, "InvalidInput": true,
}

// FuzzPostEntry posts arbitrary bytes to /entries over a fake ledger: no
// panic, no 5xx, every refusal a well-formed problem with a known title, and
// only statements that parse and verify reach the ledger's Register.
//
// Seeds: statements signed here with a fresh did:x509 chain, and the
// scitt-ccf-ledger interop payloads when the shared test data is present.
func FuzzPostEntry(f *testing.F) {
	iss := newIssuer(f, "fuzz")
	for _, p := range []string{"", "a", "{\"sbom\": true}"} {
		f.Add(iss.sign(f, p))
	}
	files, _ := filepath.Glob(filepath.Join("..", "..", "shared", "testdata", "interop", "scitt-ccf-ledger", "test", "payloads", "*.cose"))
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40})

	const max = 64 << 10
	e := newEnv(f, func(s *registry.Service) { s.Policy.MaxStatementBytes = max })
	f.Fuzz(func(t *testing.T, body []byte) {
		before := e.ledger.calls()
		w := e.post(body)
		called := e.ledger.calls() - before
		if w.Code >= 500 {
			t.Fatalf("POST %x: %d %q", body, w.Code, w.Body.Bytes())
		}
		// What the handler must have decided, computed independently.
		accepted := false
		if len(body) <= max {
			if s, err := cose.ParseStatement(body, cose.ParseOptions{MaxSize: max}); err == nil {
				_, err = s.Verify(cose.VerifyOptions{})
				accepted = err == nil
			}
		}
		if called > 0 && !accepted {
			t.Fatalf("Register called for a statement that does not parse and verify: %x", body)
		}
		switch w.Code {
		case http.StatusCreated:
			if called != 1 {
				t.Fatalf("201 with %d Register calls", called)
			}
			le := leafEntry(t, body)
			if _, err := cose.VerifyInclusion(w.Body.Bytes(), le[:], e.ledger.keys); err != nil {
				t.Fatalf("201 body is not a receipt for the statement: %v", err)
			}
		default:
			if accepted {
				t.Fatalf("valid statement answered %d %q", w.Code, w.Body.Bytes())
			}
			title, _ := decodeProblem(t, w)
			if !knownTitles[title] {
				t.Fatalf("unknown problem title %q (status %d)", title, w.Code)
			}
			if called != 0 {
				t.Fatalf("refused with %d but Register was called", w.Code)
			}
		}
	})
}
