package govwire

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/charterlog/charter/cose"
	gocose "github.com/veraison/go-cose"
)

// algForKey picks the algorithm SignRequest uses for a key: the one its
// curve dictates, EdDSA for Ed25519, PS256 for RSA.
func algForKey(pub crypto.PublicKey) (gocose.Algorithm, error) {
	var alg gocose.Algorithm
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return 0, errors.New("nil ECDSA key")
		}
		var ok bool
		if alg, ok = cose.CurveAlgorithm(k.Curve); !ok {
			return 0, fmt.Errorf("unsupported curve %s", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
		alg = gocose.AlgorithmEdDSA
	case *rsa.PublicKey:
		alg = gocose.AlgorithmPS256
	default:
		return 0, fmt.Errorf("unsupported key type %T", pub)
	}
	return alg, cose.CheckAlgorithmKey(alg, pub)
}

// Verify checks that memberCert's key signed r:
//
//   - the kid must be MemberIDOf(memberCert), else ErrUnknownMember (the
//     caller looked up the wrong certificate, or the request names another
//     member than the one it is being checked against);
//   - alg must fit the certificate's key (see cose.CheckAlgorithmKey), else
//     ErrBadSignature;
//   - the signature must verify over the Sig_structure built from
//     RawProtected and Payload as received (RFC 9052 §4.4), else
//     ErrBadSignature.
//
// Verify does not look at the certificate's validity period or issuer:
// membership is decided by governance, not by a CA.
func (r *Request) Verify(memberCert *x509.Certificate) error {
	if r == nil {
		return fmt.Errorf("%w: nil request", ErrMalformed)
	}
	if memberCert == nil {
		return fmt.Errorf("%w: no member certificate", ErrUnknownMember)
	}
	if id := MemberIDOf(memberCert); id != r.MemberID {
		return fmt.Errorf("%w: request is from member %s, certificate is member %s", ErrUnknownMember, r.MemberID, id)
	}
	if r.httpSig != nil {
		return r.httpSig.verify(memberCert.PublicKey)
	}
	if err := cose.CheckAlgorithmKey(r.Alg, memberCert.PublicKey); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	v, err := gocose.NewVerifier(r.Alg, memberCert.PublicKey)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if err := cose.VerifySign1(v, r.Alg, r.RawProtected, r.Payload, r.Signature); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}

// SignRequest builds and signs a governance request the way CCF's
// ccf_cose_sign1 does: tag 18, protected header {1: alg, 4: kid as bstr,
// "ccf.gov.msg.created_at", "ccf.gov.msg.type", and
// "ccf.gov.msg.proposal_id" for ballots and withdrawals} in core
// deterministic order, an empty unprotected map, the payload attached. alg
// follows the key (algForKey). cert must hold signer's public key. The
// result passes ParseRequest and Verify(cert).
func SignRequest(rand io.Reader, signer crypto.Signer, cert *x509.Certificate, t MsgType, createdAt time.Time, proposalID string, payload []byte) ([]byte, error) {
	if signer == nil || cert == nil {
		return nil, errors.New("gov: SignRequest needs a signer and its certificate")
	}
	pub := signer.Public()
	if eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(cert.PublicKey) {
		return nil, errors.New("gov: the certificate does not hold the signer's public key")
	}
	alg, err := algForKey(pub)
	if err != nil {
		return nil, fmt.Errorf("gov: %v", err)
	}
	if !t.known() {
		return nil, fmt.Errorf("gov: unknown message type %q", t)
	}
	switch {
	case t.needsProposalID():
		if err := checkProposalID(proposalID); err != nil {
			return nil, fmt.Errorf("gov: %s proposal id: %v", t, err)
		}
	case proposalID != "":
		return nil, fmt.Errorf("gov: a %s carries no proposal id", t)
	}
	created := createdAt.Unix()
	if created < 0 {
		return nil, fmt.Errorf("gov: created_at %v is before the Unix epoch", createdAt)
	}
	if payload == nil {
		payload = []byte{}
	}
	if len(payload) > MaxRequestBytes {
		return nil, fmt.Errorf("gov: payload of %d bytes exceeds %d", len(payload), MaxRequestBytes)
	}
	hdr := map[any]any{
		labelAlg:       int64(alg),
		labelKid:       []byte(MemberIDOf(cert)),
		labelMsgType:   string(t),
		labelCreatedAt: uint64(created),
	}
	if proposalID != "" {
		hdr[labelProposalID] = proposalID
	}
	protected, err := encodeHeader(hdr)
	if err != nil {
		return nil, err
	}
	s, err := gocose.NewSigner(alg, signer)
	if err != nil {
		return nil, fmt.Errorf("gov: %v", err)
	}
	sig, err := s.Sign(rand, cose.SigStructure(protected, payload))
	if err != nil {
		return nil, fmt.Errorf("gov: signing: %v", err)
	}
	out := encodeSign1(protected, payload, sig)
	if len(out) > MaxRequestBytes {
		return nil, fmt.Errorf("gov: request of %d bytes exceeds %d", len(out), MaxRequestBytes)
	}
	return out, nil
}
