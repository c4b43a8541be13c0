package httpapi

import (
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/registry"
)

// The classic governance routes take a member's request in one of three
// forms, chosen by its headers before the body is read:
//
//   - Authorization: Signature …  an HTTP-signed JSON body, as CCF ≤ 3's
//     scurl.sh sends it (gov/httpsig.go has the scheme and its rules);
//   - Content-Type: application/cose  a COSE_Sign1, as CCF's ccf_cose_sign1
//     and the charter CLI send it;
//   - neither, on /gov/ack/update_state_digest only: the member's TLS client
//     certificate, as plain curl sends it in Managed CCF's walkthrough.

// classicAuth is how a classic request authenticates.
type classicAuth int

const (
	authCOSE classicAuth = iota
	authHTTPSig
	authClientCert
)

// classicAuthOf chooses the form of r, or answers why none applies.
// certOK says whether the route accepts a client certificate alone.
func classicAuthOf(r *http.Request, certOK bool) (classicAuth, *registry.Problem) {
	if h := r.Header.Values("Authorization"); len(h) > 0 && govwire.IsHTTPSigned(h[0]) {
		// scurl.sh sends the body as JSON (or with no type when empty);
		// a COSE body under an HTTP signature is a client confused about
		// which of the two it is sending.
		if ct := r.Header.Get("Content-Type"); ct != "" {
			if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
				return 0, &registry.Problem{Status: http.StatusUnsupportedMediaType, Title: "UnsupportedContentType",
					Detail: "an HTTP-signed governance request carries JSON: Content-Type application/json"}
			}
		}
		return authHTTPSig, nil
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "application/cose" {
		return authCOSE, nil
	}
	if certOK {
		return authClientCert, nil
	}
	return 0, &registry.Problem{Status: http.StatusUnsupportedMediaType, Title: "UnsupportedContentType",
		Detail: "governance requests are signed by a member: a COSE_Sign1 (Content-Type application/cose) or an HTTP signature (Authorization: Signature …, as scurl.sh makes it)"}
}

// readBody reads at most maxBody bytes of r's body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *registry.Problem) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, &registry.Problem{Status: http.StatusRequestEntityTooLarge, Title: "RequestBodyTooLarge",
			Detail: fmt.Sprintf("governance requests are at most %d bytes", maxBody)}
	}
	return body, nil
}

// httpMessage is what gov needs of r to check its HTTP signature.
func httpMessage(r *http.Request, body []byte) govwire.HTTPMessage {
	return govwire.HTTPMessage{Method: r.Method, Target: r.RequestURI, Header: r.Header, Body: body}
}

// clientCert is the TLS client certificate of the member who called: the
// one it presented, or, on a request a trusted node forwarded to this
// leader, the one its client presented to that node (forwardWrites). A
// node's own certificate is never a member's.
func (g govAPI) clientCert(r *http.Request) *x509.Certificate {
	if g.trustedPeer != nil && g.trustedPeer(r) {
		der, err := base64.StdEncoding.DecodeString(r.Header.Get(headerForwardedClientCert))
		if err != nil || len(der) == 0 {
			return nil
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil
		}
		return c
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil
	}
	return r.TLS.PeerCertificates[0]
}

// passClientCert readies r, which a follower relays to the leader, to
// carry its client's certificate: the header is dropped when anyone but a
// trusted node set it, and set from the TLS handshake when the client
// presented one.
func (s *Server) passClientCert(r *http.Request) {
	if s.trustedPeer(r) {
		return
	}
	r.Header.Del(headerForwardedClientCert)
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		r.Header.Set(headerForwardedClientCert, base64.StdEncoding.EncodeToString(r.TLS.PeerCertificates[0].Raw))
	}
}
