package cose

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"

	"github.com/charterlog/charter/cbor"
	gocose "github.com/veraison/go-cose"
)

// ContentTypeEndorsedCert is the content type of a service identity
// endorsement's payload: the endorsed (previous) service certificate, DER.
const ContentTypeEndorsedCert = "application/pkix-cert"

// ErrBadEndorsement reports a service identity endorsement that does not
// decode or does not verify.
var ErrBadEndorsement = errors.New("cose: bad service identity endorsement")

// SignEndorsement returns the endorsement of a previous service identity by
// the current one, made when a service is recovered: a COSE_Sign1_Tagged
// signed by the current service key (alg, kid in the protected header) whose
// payload is the previous service certificate (DER) and whose content type
// is ContentTypeEndorsedCert. A verifier that trusts the current key may
// then trust receipts signed by the previous one (spec/formats.md).
func SignEndorsement(rand io.Reader, signer crypto.Signer, key Key, previousCertDER []byte) ([]byte, error) {
	if len(previousCertDER) == 0 {
		return nil, errors.New("cose: endorsing an empty certificate")
	}
	s, err := gocose.NewSigner(key.Alg, signer)
	if err != nil {
		return nil, fmt.Errorf("cose: endorsement signer: %w", err)
	}
	protected, err := cbor.Marshal(map[int64]any{
		labelAlg:         int64(key.Alg),
		labelKid:         key.Kid,
		labelContentType: ContentTypeEndorsedCert,
	})
	if err != nil {
		return nil, err
	}
	sig, err := s.Sign(rand, SigStructure(protected, previousCertDER))
	if err != nil {
		return nil, fmt.Errorf("cose: signing the endorsement: %w", err)
	}
	out := []byte{0xd2, 0x84}
	out = cbor.AppendBytes(out, protected)
	out = append(out, 0xa0)
	out = cbor.AppendBytes(out, previousCertDER)
	return cbor.AppendBytes(out, sig), nil
}

// VerifyEndorsement checks that b is key's endorsement of the certificate
// previousCertDER (SignEndorsement): the protected header names key's alg
// and kid and the certificate content type, the payload is that
// certificate byte for byte, and the signature is key's.
func VerifyEndorsement(b []byte, key Key, previousCertDER []byte) error {
	m, err := DecodeSign1(b, Sign1Options{EmptyUnprotected: true})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadEndorsement, err)
	}
	var hdr map[int64]cbor.RawMessage
	if err := decMode.Unmarshal(m.Protected, &hdr); err != nil {
		return fmt.Errorf("%w: protected header: %v", ErrBadEndorsement, err)
	}
	var alg int64
	var kid []byte
	var ct string
	if err := decMode.Unmarshal(hdr[labelAlg], &alg); err != nil || gocose.Algorithm(alg) != key.Alg {
		return fmt.Errorf("%w: alg is not the endorsing key's %v", ErrBadEndorsement, key.Alg)
	}
	if err := decMode.Unmarshal(hdr[labelKid], &kid); err != nil || !bytes.Equal(kid, key.Kid) {
		return fmt.Errorf("%w: kid is not the endorsing key's", ErrBadEndorsement)
	}
	if err := decMode.Unmarshal(hdr[labelContentType], &ct); err != nil || ct != ContentTypeEndorsedCert {
		return fmt.Errorf("%w: content type is not %s", ErrBadEndorsement, ContentTypeEndorsedCert)
	}
	if len(hdr) != 3 {
		return fmt.Errorf("%w: protected header has %d labels, want alg, kid and content type", ErrBadEndorsement, len(hdr))
	}
	if !bytes.Equal(m.Payload, previousCertDER) {
		return fmt.Errorf("%w: it endorses another certificate", ErrBadEndorsement)
	}
	v, err := gocose.NewVerifier(key.Alg, key.Public)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadEndorsement, err)
	}
	if err := VerifySign1(v, key.Alg, m.Protected, m.Payload, m.Signature); err != nil {
		return fmt.Errorf("%w: the signature is not the endorsing key's: %v", ErrBadEndorsement, err)
	}
	return nil
}
