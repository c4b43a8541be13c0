package appauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"mime"
	"net/http"
	"regexp"

	charcose "github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/veraison/go-cose"
)

// Protected header labels of a user's COSE_Sign1 request (CCF's
// user_cose_sign1 defaults; both optional).
const (
	HeaderMsgType      = "ccf.msg.type"
	HeaderMsgCreatedAt = "ccf.msg.created_at"
)

// coseCurves are the algorithms user_cose_sign1 accepts (CCF's: ECDSA
// only) and the curve each needs: ES256 with a P-384 key would verify,
// but is not what the algorithm names.
var coseCurves = map[cose.Algorithm]elliptic.Curve{
	cose.AlgorithmES256: elliptic.P256(),
	cose.AlgorithmES384: elliptic.P384(),
	cose.AlgorithmES512: elliptic.P521(),
}

var hexID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// coseCaller authenticates a body that is a user's COSE_Sign1 (CCF's
// cose_auth.h, user_cose_sign1):
//
//	Content-Type: application/cose
//	18([protected: {1: ES256/384/512, 4: h'<user id hex>',
//	                ? "ccf.msg.type": tstr, ? "ccf.msg.created_at": uint},
//	    unprotected, payload: bstr, signature])
//
// verified with the key of the user's certificate in users.certs.
func (a *Authenticator) coseCaller(r *http.Request, body []byte) (map[string]any, error) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/cose" {
		return nil, refuse("the request is not application/cose")
	}
	// The envelope by the one COSE_Sign1 decoder (strict, under the CBOR
	// policy); its headers as go-cose types them (labels, the types of the
	// parameters it knows, crit), which the checks below read.
	msg, err := charcose.DecodeSign1(body, charcose.Sign1Options{})
	if err != nil {
		return nil, refuse("the body is not a tagged COSE_Sign1: %v", err)
	}
	hdr := cose.Headers{RawProtected: msg.Elements[0], RawUnprotected: msg.Elements[1]}
	if err := hdr.UnmarshalFromRaw(); err != nil {
		return nil, refuse("the body is not a tagged COSE_Sign1: %v", err)
	}
	if msg.Payload == nil {
		return nil, refuse("the COSE_Sign1 has no payload (detached payloads are not accepted)")
	}
	ph := hdr.Protected
	alg, err := ph.Algorithm()
	if err != nil {
		return nil, refuse("protected header alg: %v", err)
	}
	curve, ok := coseCurves[alg]
	if !ok {
		return nil, refuse("algorithm %v is not accepted (want ES256, ES384 or ES512)", alg)
	}
	kid, ok := ph[cose.HeaderLabelKeyID].([]byte)
	if !ok {
		return nil, refuse("the protected header needs kid (4) as a byte string holding the user id in hex")
	}
	id := string(kid)
	if !hexID.MatchString(id) {
		return nil, refuse("kid %q is not a user id (64 lowercase hex digits)", kid)
	}
	if v, ok := ph[HeaderMsgType]; ok {
		if _, isStr := v.(string); !isStr {
			return nil, refuse("%s must be a text string", HeaderMsgType)
		}
	}
	if v, ok := ph[HeaderMsgCreatedAt]; ok {
		switch n := v.(type) {
		case uint64:
		case int64:
			if n < 0 {
				return nil, refuse("%s must be an unsigned integer", HeaderMsgCreatedAt)
			}
		default:
			return nil, refuse("%s must be an unsigned integer", HeaderMsgCreatedAt)
		}
	}
	certText, ok, err := a.get(govwire.MapUserCerts, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, refuse("kid %s is not a user", id)
	}
	cert, err := parseCert(certText)
	if err != nil {
		return nil, fmt.Errorf("appauth: users.certs[%s]: %w", id, err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != curve {
		return nil, refuse("algorithm %v does not fit the key of user %s", alg, id)
	}
	v, err := cose.NewVerifier(alg, pub)
	if err != nil {
		return nil, refuse("the key of user %s: %v", id, err)
	}
	// RFC 9052 §4.4: the signature covers the protected bytes as received.
	if err := charcose.VerifySign1(v, alg, msg.Protected, msg.Payload, msg.Signature); err != nil {
		return nil, refuse("the signature does not verify with the certificate of user %s", id)
	}
	data, err := a.infoData(govwire.MapUserInfo, id, "user_data")
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"policy": UserCOSESign1, "id": id, "data": data, "cert": string(certText),
		"cose": map[string]any{"content": msg.Payload},
	}, nil
}

func parseCert(text []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(text)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("not a PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}
