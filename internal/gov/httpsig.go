package gov

import (
	"crypto/x509"
	"fmt"

	"github.com/charterlog/charter/internal/govwire"
)

// ParseHTTPSigned reads an HTTP-signed governance request of type t
// (govwire.ParseHTTPSigned) and finds its member among s's: keyId = the
// SHA-256 of one of the PEM forms of a member's recorded certificate, or
// the member id (govwire.KeyIDNames), and last the member whose key
// verifies the signature, tried over at most maxTrialMembers members. The
// signature itself is verified, with the member's current certificate,
// when the request is executed (Verify).
func (s *Service) ParseHTTPSigned(msg govwire.HTTPMessage, t govwire.MsgType, proposalID string) (*govwire.Request, error) {
	r, err := govwire.ParseHTTPSigned(msg, t, proposalID)
	if err != nil {
		return nil, err
	}
	id, err := s.memberForKeyID(r)
	if err != nil {
		return nil, err
	}
	if err := r.SetHTTPMember(id); err != nil {
		return nil, err
	}
	return r, nil
}

// maxTrialMembers bounds the members whose keys are tried when keyId
// matches none: each try is one signature verification (about half a
// millisecond for P-384), which an unauthenticated caller must not be able
// to multiply without limit. The fallback is for certificates recorded in a
// PEM form govwire.KeyIDNames does not foresee; consortia are small.
const maxTrialMembers = 16

// memberForKeyID finds the member an HTTP-signed request names.
func (s *Service) memberForKeyID(r *govwire.Request) (string, error) {
	type member struct {
		id   string
		cert *x509.Certificate
	}
	var members []member
	found := ""
	err := s.ledger.ScanKV(govwire.MapMemberCerts, func(k, v []byte) error {
		cert, err := parseCertPEM(string(v))
		if err != nil {
			return nil // not a member anyone can sign as
		}
		if govwire.KeyIDNames(r.HTTPKeyID(), string(k), string(v), cert.Raw) {
			found = string(k)
		}
		members = append(members, member{string(k), cert})
		return nil
	})
	if err != nil {
		return "", err
	}
	if found != "" {
		return found, nil
	}
	if len(members) > maxTrialMembers {
		return "", fmt.Errorf("%w: keyId %s is the SHA-256 of no member's certificate PEM, and the %d members are too many to try each key", govwire.ErrUnknownKeyID, r.HTTPKeyID(), len(members))
	}
	for _, m := range members {
		if r.VerifyHTTPSignature(m.cert.PublicKey) == nil {
			return m.id, nil
		}
	}
	return "", fmt.Errorf("%w: keyId %s is the SHA-256 of no member's certificate PEM, and no member's key verifies the signature", govwire.ErrUnknownKeyID, r.HTTPKeyID())
}
