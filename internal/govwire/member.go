package govwire

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
)

// MemberIDOf returns a member's id: the lowercase hex SHA-256 of its
// certificate's DER, as CCF computes it and as governance requests name it
// in kid. A nil certificate has no id and yields "".
func MemberIDOf(cert *x509.Certificate) string {
	if cert == nil || len(cert.Raw) == 0 {
		return ""
	}
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// NodeID is CCF's id of a node: the hex SHA-256 of its identity public key
// (DER SubjectPublicKeyInfo). Charter numbers nodes by raft (raft_id);
// CCF's tools, and governance's node actions, may name a node by this id.
func NodeID(spkiDER []byte) string {
	sum := sha256.Sum256(spkiDER)
	return hex.EncodeToString(sum[:])
}

// NodeIDOfPEM is NodeID of a node record's public key PEM, "" when it
// holds no public key that parses.
func NodeIDOfPEM(p string) string {
	b, _ := pem.Decode([]byte(p))
	if b == nil || b.Type != "PUBLIC KEY" {
		return ""
	}
	if _, err := x509.ParsePKIXPublicKey(b.Bytes); err != nil {
		return ""
	}
	return NodeID(b.Bytes)
}
