package attest

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
)

// Key release: once a joining node's evidence verified and governance
// trusts it, the leader hands it the service's secrets (service key, note
// key, ledger secret) encrypted to the node's attested key, so that only
// the code whose report bound that key can read them.
//
// RFC 9180 HPKE, base mode: DHKEM(P-256, HKDF-SHA256), HKDF-SHA256,
// AES-256-GCM, with the node's P-256 identity key (the key whose SHA-256
// is the report's report_data) as the recipient. The info string binds the
// ciphertext to the node id and to the digest of the evidence that was
// verified, so a sealed bundle cannot be replayed to another node or
// against other evidence.

// ErrRelease reports a sealed bundle that does not open.
var ErrRelease = errors.New("attest: sealed secrets do not open")

const releaseLabel = "charter key release v1"

func releaseInfo(nodeID uint64, evidenceDigest [32]byte) []byte {
	info := append([]byte(releaseLabel), 0)
	info = binary.BigEndian.AppendUint64(info, nodeID)
	return append(info, evidenceDigest[:]...)
}

// SealSecrets encrypts secrets to node nodeID's attested key.
func SealSecrets(nodeKey *ecdsa.PublicKey, nodeID uint64, evidenceDigest [32]byte, secrets []byte) ([]byte, error) {
	pub, err := nodeKey.ECDH()
	if err != nil {
		return nil, fmt.Errorf("attest: node key: %w", err)
	}
	if pub.Curve() != ecdh.P256() {
		return nil, errors.New("attest: key release needs a P-256 node key")
	}
	pk, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return hpke.Seal(pk, hpke.HKDFSHA256(), hpke.AES256GCM(), releaseInfo(nodeID, evidenceDigest), secrets)
}

// OpenSecrets decrypts secrets sealed to this node (its id and the digest of
// the evidence it presented).
func OpenSecrets(nodeKey *ecdsa.PrivateKey, nodeID uint64, evidenceDigest [32]byte, sealed []byte) ([]byte, error) {
	priv, err := nodeKey.ECDH()
	if err != nil {
		return nil, fmt.Errorf("attest: node key: %w", err)
	}
	k, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	out, err := hpke.Open(k, hpke.HKDFSHA256(), hpke.AES256GCM(), releaseInfo(nodeID, evidenceDigest), sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRelease, err)
	}
	return out, nil
}
