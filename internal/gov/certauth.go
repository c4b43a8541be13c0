package gov

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"github.com/charterlog/charter/internal/govwire"
)

// UpdateStateDigestForCert issues a state digest to the member whose
// certificate cert is, authenticated by the TLS handshake in which its
// client proved it holds the certificate's key, and not by a signed
// request: CCF's /gov/ack/update_state_digest accepts a member's client
// certificate alone, and Managed CCF's walkthrough activates members with
// plain curl. Only a member may ask (govwire.ErrUnknownMember otherwise), in a
// state that may acknowledge: Accepted or Active. Asking changes nothing a
// member could not undo by asking again; the ack that activates still
// needs a signature over the digest.
//
// No replay rule applies: the caller proved possession of the key in this
// very connection. The transaction's claims name the member and say how it
// was authenticated.
func (s *Service) UpdateStateDigestForCert(ctx context.Context, cert *x509.Certificate) (*Result, error) {
	id := govwire.MemberIDOf(cert)
	if id == "" {
		return nil, fmt.Errorf("%w: no client certificate", govwire.ErrUnknownMember)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := newOverlay(s.ledger)
	if _, ok, err := o.Get(govwire.MapMemberCerts, id); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("%w: the client certificate (id %s) is no member's", govwire.ErrUnknownMember, id)
	}
	info, err := memberInfo(o, id)
	if err != nil {
		return nil, err
	}
	if info.Status != govwire.MemberAccepted && info.Status != govwire.MemberActive {
		return nil, fmt.Errorf("%w: member %s is %s; only an Accepted or Active member may ask for a state digest", ErrNotActive, id, info.Status)
	}
	res := &Result{}
	if err := s.issueStateDigest(o, id, res); err != nil {
		return nil, err
	}
	claims, err := json.Marshal(map[string]any{
		"type":                   govwire.MsgStateDigest,
		"tls_client_certificate": map[string]string{"member_id": id},
	})
	if err != nil {
		return nil, err
	}
	txid, err := s.ledger.SubmitWrites(ctx, o.writeSet(claims))
	if err != nil {
		return nil, err
	}
	res.TxID = txid
	return res, nil
}
