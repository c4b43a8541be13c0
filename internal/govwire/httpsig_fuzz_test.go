package govwire

import (
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseHTTPSigned feeds the HTTP signature parser Authorization and
// Digest headers and bodies, seeded with scurl.sh's shape and near misses.
// It must never panic, and whatever it accepts must cover the three
// entries scurl.sh signs, with the Digest of the very body received.
func FuzzParseHTTPSigned(f *testing.F) {
	body := `{"state_digest": "` + strings.Repeat("0", 64) + `"}`
	sum := sha256.Sum256([]byte(body))
	digest := "SHA-256=" + base64.StdEncoding.EncodeToString(sum[:])
	sig := base64.StdEncoding.EncodeToString(make([]byte, 70))
	auth := `Signature keyId="` + strings.Repeat("ab", 32) + `",algorithm="hs2019",headers="(request-target) digest content-length",signature="` + sig + `"`
	f.Add(auth, digest, body)
	f.Add(strings.Replace(auth, `algorithm="hs2019"`, `signature_algorithm="hs2019"`, 1), digest, body)
	f.Add(strings.Replace(auth, "digest content-length", "content-length", 1), digest, body)
	f.Add(auth+`,created="1"`, digest, body)
	f.Add(`Signature keyId="a",,`, "SHA-256=", "")
	f.Add(auth, "sha-256="+base64.StdEncoding.EncodeToString(sum[:]), body)
	f.Fuzz(func(t *testing.T, auth, digest, body string) {
		msg := HTTPMessage{Method: "POST", Target: "/gov/ack", Body: []byte(body), Header: map[string][]string{
			"Authorization":  {auth},
			"Digest":         {digest},
			"Content-Length": {strconv.Itoa(len(body))},
		}}
		r, err := ParseHTTPSigned(msg, MsgAck, "")
		if err != nil {
			return
		}
		ss := r.httpSig.signingString
		for _, want := range []string{"(request-target): post /gov/ack", "digest: " + digest, "content-length: " + strconv.Itoa(len(body))} {
			if !strings.Contains(ss, want) {
				t.Fatalf("accepted a signing string without %q: %q", want, ss)
			}
		}
		if err := checkBodyDigest(digest, []byte(body)); err != nil {
			t.Fatalf("accepted a Digest that does not match the body: %v", err)
		}
	})
}
