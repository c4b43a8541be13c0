package join

import (
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"testing"
)

// FuzzParseRequest: POST /node/join is the one peer endpoint an
// unauthenticated caller reaches, so its parser sees arbitrary bytes. It
// never panics, and whatever it accepts carries a signature by the key it
// names over exactly the fields it returns.
func FuzzParseRequest(f *testing.F) {
	f.Add(validJoinBody(f))
	f.Add(validJoinBody(f))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"url":"https://127.0.0.1:1","node_key":"","evidence":"","signature":""}`))
	f.Add([]byte(`[[[[[[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, key, ev, err := ParseRequest(body)
		if err != nil {
			// The edge answers these kinds 400.
			var e *Error
			if !errors.As(err, &e) || e.Detail == "" ||
				!(errors.Is(err, ErrInvalidRequest) || errors.Is(err, ErrInvalidSignature) || errors.Is(err, ErrInvalidEvidence)) {
				t.Fatalf("a refusal without a client-error kind and a reason: %v", err)
			}
			return
		}
		if req == nil || key == nil || ev == nil {
			t.Fatal("accepted without a request, key or evidence")
		}
		der, err := x509.MarshalPKIXPublicKey(key)
		if err != nil || string(der) != string(req.NodeKey) {
			t.Fatal("the returned key is not the request's node_key")
		}
		if !ecdsa.VerifyASN1(key, digest(req.URL, req.NodeKey, req.Evidence), req.Signature) {
			t.Fatal("accepted a request whose signature does not verify")
		}
	})
}
