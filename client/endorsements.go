package client

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/charterlog/charter/cose"
)

// ErrUnendorsedKey reports a service key set holding a key that no chain
// of recovery endorsements from the service certificate reaches.
var ErrUnendorsedKey = errors.New("client: a service key is not endorsed")

// Network fetches GET /node/network: the service certificate and the
// endorsements of its previous identities (spec/formats.md).
func (c *Client) Network(ctx context.Context) ([]byte, error) { return c.get(ctx, "/node/network") }

// CheckEndorsedKeys checks a recovered service's key set against its
// /node/network answer: starting from the service certificate, each
// recovery (newest first) must name the identity reached so far as its new
// one and hold that identity's endorsement (cose.VerifyEndorsement) of the
// previous certificate, which is reached next; every key of keys must be
// one the chain reaches. It returns how many previous identities the chain
// holds. A verifier that trusts the current certificate may then trust
// receipts signed by any key of keys.
func CheckEndorsedKeys(network []byte, keys cose.KeySet) (int, error) {
	var nw struct {
		Cert         string `json:"service_certificate"`
		Endorsements []struct {
			Previous    string `json:"previous_service_identity"`
			Next        string `json:"service_identity"`
			Endorsement string `json:"endorsement"`
		} `json:"service_identity_endorsements"`
	}
	if err := json.Unmarshal(network, &nw); err != nil {
		return 0, fmt.Errorf("client: /node/network: %w", err)
	}
	cur, err := certDER(nw.Cert)
	if err != nil {
		return 0, fmt.Errorf("client: /node/network service_certificate: %w", err)
	}
	reached := map[string]bool{}
	key, err := certKey(cur)
	if err != nil {
		return 0, err
	}
	reached[string(key.Kid)] = true
	for i := len(nw.Endorsements) - 1; i >= 0; i-- {
		e := nw.Endorsements[i]
		next, err1 := certDER(e.Next)
		prev, err2 := certDER(e.Previous)
		sig, err3 := base64.StdEncoding.DecodeString(e.Endorsement)
		if err := errors.Join(err1, err2, err3); err != nil {
			return 0, fmt.Errorf("client: recovery %d: %w", i+1, err)
		}
		if !bytes.Equal(next, cur) {
			return 0, fmt.Errorf("%w: recovery %d endorses from an identity the chain does not reach", ErrUnendorsedKey, i+1)
		}
		if err := cose.VerifyEndorsement(sig, key, prev); err != nil {
			return 0, fmt.Errorf("recovery %d: %w", i+1, err)
		}
		cur = prev
		if key, err = certKey(cur); err != nil {
			return 0, err
		}
		reached[string(key.Kid)] = true
	}
	for _, k := range keys {
		if !reached[string(k.Kid)] {
			return 0, fmt.Errorf("%w: key %s is neither the service certificate's nor endorsed by it through the service's recoveries", ErrUnendorsedKey, k.Kid)
		}
	}
	return len(nw.Endorsements), nil
}

func certDER(p string) ([]byte, error) {
	b, _ := pem.Decode([]byte(p))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return b.Bytes, nil
}

func certKey(der []byte) (cose.Key, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return cose.Key{}, err
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return cose.Key{}, errors.New("client: a service certificate without an ECDSA key")
	}
	return cose.NewKey(pub)
}
