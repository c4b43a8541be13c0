package govwire

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
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
