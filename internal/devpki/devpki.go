// Package devpki makes publisher certificate chains for development, the
// CLI's keygen, the load generator and tests: a self-signed CA and a
// code-signing leaf issued by it, and the did:x509 issuer that names them
// (the CA's fingerprint and the leaf's subject CN), as Charter accepts them.
package devpki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"

	"github.com/charterlog/charter/cose"
)

// Chain is a publisher's chain, leaf first, and its did:x509 issuer.
type Chain struct {
	Certs  []*x509.Certificate // [leaf, CA]
	Issuer string
}

// DER returns the chain as DER, leaf first (an x5chain).
func (c *Chain) DER() [][]byte {
	out := make([][]byte, len(c.Certs))
	for i, cert := range c.Certs {
		out[i] = cert.Raw
	}
	return out
}

// New makes a chain for cn: a CA (subject "cn CA") valid for caValidity and
// a leaf (subject cn, EKU codeSigning) valid for leafValidity, both from
// notBefore.
func New(cn string, leafKey, caKey crypto.Signer, notBefore time.Time, caValidity, leafValidity time.Duration) (*Chain, error) {
	nb := notBefore.UTC()
	caSerial, err := serial()
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          caSerial,
		Subject:               pkix.Name{CommonName: cn + " CA"},
		NotBefore:             nb,
		NotAfter:              nb.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("making the CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	leafSerial, err := serial()
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber:          leafSerial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             nb,
		NotAfter:              nb.Add(leafValidity),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, leafKey.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("making the leaf certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		return nil, err
	}
	certs := []*x509.Certificate{leaf, ca}
	did, err := cose.NewDIDX509(certs, 1, "subject:CN:"+cose.PctEncode(cn))
	if err != nil {
		return nil, err
	}
	return &Chain{Certs: certs, Issuer: did}, nil
}

func serial() (*big.Int, error) { return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)) }
