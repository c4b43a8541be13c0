package appauth

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"time"

	"github.com/charterlog/charter/internal/govwire"
)

// peerCert is the client's certificate: the first the TLS handshake
// presented. Nothing about its issuer is assumed.
func peerCert(r *http.Request) (*x509.Certificate, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, refuse("no client certificate was presented")
	}
	return r.TLS.PeerCertificates[0], nil
}

func certPEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// checkValidity refuses a certificate outside its validity period at now,
// as CCF's user_cert and any_cert do.
func checkValidity(c *x509.Certificate, now time.Time) error {
	if now.Before(c.NotBefore) {
		return refuse("the client certificate is not valid before %s", c.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(c.NotAfter) {
		return refuse("the client certificate expired at %s", c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// certCaller authenticates the client certificate as one registered in
// certs (user_cert, member_cert): CCF's cert_auth.cpp.
func (a *Authenticator) certCaller(r *http.Request, policy, certs, info, dataField string, checkTime bool) (map[string]any, error) {
	c, err := peerCert(r)
	if err != nil {
		return nil, err
	}
	if checkTime {
		if err := checkValidity(c, a.now()); err != nil {
			return nil, err
		}
	}
	id := govwire.MemberIDOf(c)
	if _, ok, err := a.get(certs, id); err != nil {
		return nil, err
	} else if !ok {
		kind := "user"
		if policy == MemberCert {
			kind = "member"
		}
		return nil, refuse("the client certificate (id %s) is not a %s's", id, kind)
	}
	data, err := a.infoData(info, id, dataField)
	if err != nil {
		return nil, err
	}
	return map[string]any{"policy": policy, "id": id, "data": data, "cert": certPEM(c)}, nil
}

// anyCert accepts any client certificate within its validity period.
func (a *Authenticator) anyCert(r *http.Request) (map[string]any, error) {
	c, err := peerCert(r)
	if err != nil {
		return nil, err
	}
	if err := checkValidity(c, a.now()); err != nil {
		return nil, err
	}
	return map[string]any{"policy": AnyCert, "cert": certPEM(c)}, nil
}
