// Package identity keeps a node's identities in its data directory: the
// service's (the service key and certificate, the note key, the ledger
// secret), the node's own key, and the certificates the service key issues
// to nodes; the key its secrets are sealed under (OpenSealer); and the
// signing of checkpoints with the service and note keys (TreeHeadSigner).
// Every file is written atomically (internal/durable), and creation
// completes what a crash left half-done rather than starting over.
package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/charterlog/charter/internal/durable"
	"github.com/charterlog/charter/internal/seal"
	"golang.org/x/mod/sumdb/note"
)

// Identity is the service's keys as this node holds them.
//
// The service key (P-256, ES256) signs receipts and is the CA of the service
// certificate that clients pin; the note key (Ed25519) signs C2SP
// checkpoints; the ledger secret (32 bytes) encrypts the private maps. The
// first node creates them and keeps them in its data directory, sealed
// (sealed.go: never in clear); a node that joins receives them only once its attestation is verified and
// it is trusted (internal/join). Until then it holds the public parts only:
// ServiceKey and NoteSigner are nil and it never signs a checkpoint.
type Identity struct {
	ServiceKey     *ecdsa.PrivateKey // nil until the secrets are released to this node
	ServiceCert    *x509.Certificate
	ServiceCertPEM []byte
	NoteSigner     note.Signer // nil with ServiceKey
	NoteVerifier   string      // the note verifier key, name+hash+key
	LedgerSecret   []byte      // nil with ServiceKey

	noteSignerKey string // the note signer key, to release to trusted nodes
}

// HasSecrets reports whether this node holds the service's secrets.
func (id *Identity) HasSecrets() bool { return id.ServiceKey != nil }

// NoteSignerKey is the note signer's key as its file holds it, to release
// to a trusted node; "" without the secrets.
func (id *Identity) NoteSignerKey() string { return id.noteSignerKey }

// Files in the data directory.
const (
	FileServiceCert = "service_cert.pem"
	// FileNoteVerifier holds the note verifier key alone, for a node that
	// joined and does not hold the signer yet.
	FileNoteVerifier = "note_verifier.txt"
	// FileNodeCert is the TLS certificate the network issued to a joined
	// node; a node that holds the service key issues its own.
	FileNodeCert   = "node_cert.pem"
	FileMemberCert = "member0_cert.pem"
	FileMemberKey  = "member0_privk.pem"
	FileNodeURL    = "node.url"
)

// LoadOrCreate reads the identity from dir, creating any part that
// is missing. Creation happens only before genesis (the caller checks), so a
// crash half-way leaves files that the next start completes, never a second
// identity for a network that exists.
func LoadOrCreate(dir, issuer string, create bool, s *seal.Sealer) (*Identity, error) {
	id := &Identity{}
	ek, err := loadOrCreateP256Key(s, dir, FileServiceKey, create)
	if err != nil {
		return nil, err
	}
	id.ServiceKey = ek

	certPEM, err := os.ReadFile(filepath.Join(dir, FileServiceCert))
	switch {
	case errors.Is(err, fs.ErrNotExist) && create:
		der, err := selfSigned(ek, "Charter Service", true)
		if err != nil {
			return nil, err
		}
		certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := durable.WriteFile(filepath.Join(dir, FileServiceCert), certPEM, 0o644); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("service certificate: %w", err)
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", FileServiceCert, err)
	}
	if !cert.PublicKey.(*ecdsa.PublicKey).Equal(&ek.PublicKey) {
		return nil, fmt.Errorf("%s does not belong to %s", FileServiceCert, FileServiceKey)
	}
	id.ServiceCert, id.ServiceCertPEM = cert, certPEM

	skey, err := readSecret(s, dir, FileNoteKey)
	switch {
	case errors.Is(err, fs.ErrNotExist) && create:
		sk, vk, err := note.GenerateKey(rand.Reader, issuer)
		if err != nil {
			return nil, err
		}
		skey = []byte(sk + "\n" + vk + "\n")
		if err := writeSecret(s, dir, FileNoteKey, skey); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("note key: %w", err)
	}
	// The file holds the signer key, then its verifier key.
	lines := strings.Fields(string(skey))
	if len(lines) != 2 {
		return nil, fmt.Errorf("%s: want the signer key and the verifier key on two lines", FileNoteKey)
	}
	signer, err := note.NewSigner(lines[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", FileNoteKey, err)
	}
	if _, err := note.NewVerifier(lines[1]); err != nil {
		return nil, fmt.Errorf("%s: verifier key: %w", FileNoteKey, err)
	}
	id.NoteSigner, id.NoteVerifier, id.noteSignerKey = signer, lines[1], lines[0]

	secret, err := readSecret(s, dir, FileLedgerSecret)
	switch {
	case errors.Is(err, fs.ErrNotExist) && create:
		secret = make([]byte, LedgerSecretSize)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
		if err := writeSecret(s, dir, FileLedgerSecret, secret); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("ledger secret: %w", err)
	}
	if len(secret) != LedgerSecretSize {
		return nil, fmt.Errorf("%s: %d bytes, want %d", FileLedgerSecret, len(secret), LedgerSecretSize)
	}
	id.LedgerSecret = secret
	return id, nil
}

// LedgerSecretSize is the ledger secret's length in bytes: the private-map
// cipher (internal/apphost) derives its keys from it.
const LedgerSecretSize = 32

// loadPublic reads the public half of the service identity: the
// service certificate and the note verifier key, from a data directory of
// a joined node that has not received the secrets yet.
func loadPublic(dir string) (*Identity, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, FileServiceCert))
	if err != nil {
		return nil, fmt.Errorf("service certificate: %w", err)
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", FileServiceCert, err)
	}
	if _, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok {
		return nil, fmt.Errorf("%s: the service key must be ECDSA", FileServiceCert)
	}
	v, err := os.ReadFile(filepath.Join(dir, FileNoteVerifier))
	if err != nil {
		return nil, fmt.Errorf("note verifier key: %w", err)
	}
	vk := strings.TrimSpace(string(v))
	if _, err := note.NewVerifier(vk); err != nil {
		return nil, fmt.Errorf("%s: %w", FileNoteVerifier, err)
	}
	return &Identity{ServiceCert: cert, ServiceCertPEM: certPEM, NoteVerifier: vk}, nil
}

// Load reads the whole identity if this node holds the secrets, and
// the public half otherwise.
func Load(dir string, s *seal.Sealer) (*Identity, error) {
	if holdsSecret(dir, FileServiceKey) {
		return LoadOrCreate(dir, "", false, s)
	}
	return loadPublic(dir)
}

// StoreReleased keeps the secrets a trusted node released to this one,
// sealed: the service key (PKCS#8 DER), the note signer and verifier keys
// and the ledger secret. The service key goes last: its file is what says
// this node holds the secrets (Load).
func StoreReleased(dir string, s *seal.Sealer, serviceKeyDER []byte, noteKey, noteVerifier string, ledgerSecret []byte) error {
	if err := writeSecret(s, dir, FileNoteKey, []byte(noteKey+"\n"+noteVerifier+"\n")); err != nil {
		return err
	}
	if err := writeSecret(s, dir, FileLedgerSecret, ledgerSecret); err != nil {
		return err
	}
	return writeSecret(s, dir, FileServiceKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: serviceKeyDER}))
}

// CreateMember writes a member identity (member0) for a new network.
func CreateMember(dir string) (*x509.Certificate, error) {
	if certPEM, err := os.ReadFile(filepath.Join(dir, FileMemberCert)); err == nil {
		return ParseCertPEM(certPEM)
	}
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := durable.WriteFile(filepath.Join(dir, FileMemberKey), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	certDER, err := selfSigned(k, "member0", false)
	if err != nil {
		return nil, err
	}
	if err := durable.WriteFile(filepath.Join(dir, FileMemberCert), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}), 0o644); err != nil {
		return nil, err
	}
	return x509.ParseCertificate(certDER)
}

func selfSigned(k crypto.Signer, cn string, ca bool) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		BasicConstraintsValid: true,
		IsCA:                  ca,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	if ca {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	return x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
}

// IssueNodeCert issues node nodeID's TLS certificate under the service
// certificate, for the node's public key. The certificate names the node
// (nodeIDURI), so a peer is the node its certificate says.
//
// A trusted node's certificate (server) serves clients, who pin the service
// certificate, and authenticates the node to its peers: server and client
// authentication, for the host it listens on and the loopback names. A node
// the network has not trusted gets a client-only certificate that names no
// host: it can reach its peers (which look its key up in the ledger), but no
// client that pins the service certificate accepts it as the service.
func IssueNodeCert(id *Identity, pub *ecdsa.PublicKey, nodeID uint64, host string, server bool) ([]byte, error) {
	if !id.HasSecrets() {
		return nil, errors.New("only a node that holds the service key issues node certificates")
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: fmt.Sprintf("Charter node %d", nodeID)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{nodeIDURI(nodeID)},
	}
	if server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if host != "" && ip == nil {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		}
	}
	return x509.CreateCertificate(rand.Reader, tmpl, id.ServiceCert, pub, id.ServiceKey)
}

// nodeIDURI is the URI SAN that names a node in its certificate.
func nodeIDURI(nodeID uint64) *url.URL {
	return &url.URL{Scheme: "urn", Opaque: "charter:node:" + strconv.FormatUint(nodeID, 10)}
}

// CertNodeID is the node id a certificate names, if it names exactly one.
func CertNodeID(c *x509.Certificate) (uint64, bool) {
	var id uint64
	for _, u := range c.URIs {
		rest, ok := strings.CutPrefix(u.Opaque, "charter:node:")
		if u.Scheme != "urn" || !ok {
			continue
		}
		v, err := strconv.ParseUint(rest, 10, 64)
		if err != nil || v == 0 || id != 0 {
			return 0, false
		}
		id = v
	}
	return id, id != 0
}

// NodeTLSCertificate is this node's TLS certificate: a server certificate
// it issues itself when it holds the service key (it is trusted), else the
// client-only one the network issued when it joined (FileNodeCert).
func NodeTLSCertificate(id *Identity, key *ecdsa.PrivateKey, nodeID uint64, host, dir string) (tls.Certificate, error) {
	var certDER []byte
	if id.HasSecrets() {
		der, err := IssueNodeCert(id, &key.PublicKey, nodeID, host, true)
		if err != nil {
			return tls.Certificate{}, err
		}
		certDER = der
	} else {
		b, err := os.ReadFile(filepath.Join(dir, FileNodeCert))
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("node certificate from joining: %w", err)
		}
		c, err := ParseCertPEM(b)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("%s: %w", FileNodeCert, err)
		}
		if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
			return tls.Certificate{}, fmt.Errorf("%s is not for this node's key", FileNodeCert)
		}
		if got, ok := CertNodeID(c); !ok || got != nodeID {
			return tls.Certificate{}, fmt.Errorf("%s names node %d, not this node (%d)", FileNodeCert, got, nodeID)
		}
		certDER = c.Raw
	}
	return tls.Certificate{Certificate: [][]byte{certDER, id.ServiceCert.Raw}, PrivateKey: key}, nil
}

// CertFingerprint is SHA-256 of a certificate's DER: a member's id.
func CertFingerprint(c *x509.Certificate) [32]byte { return sha256.Sum256(c.Raw) }

func parsePrivateKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		if ek, err2 := x509.ParseECPrivateKey(blk.Bytes); err2 == nil {
			return ek, nil
		}
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign", k)
	}
	return s, nil
}

func ParseCertPEM(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// LoadOrCreateNodeKey reads the node key from dir, creating it on first
// use. The node key (P-256) is the node's own identity: its TLS key, the key
// its attestation report binds (report_data = SHA-256 of its public key),
// and the key secrets are released to. It never leaves the node.
func LoadOrCreateNodeKey(dir string, s *seal.Sealer) (*ecdsa.PrivateKey, error) {
	return loadOrCreateP256Key(s, dir, fileNodeKey, true)
}

// loadOrCreateP256Key reads the ECDSA P-256 key in dir/name (PKCS#8 PEM,
// sealed); if it is absent and create is set, it generates one and writes
// it sealed first.
func loadOrCreateP256Key(s *seal.Sealer, dir, name string, create bool) (*ecdsa.PrivateKey, error) {
	b, err := readSecret(s, dir, name)
	switch {
	case errors.Is(err, fs.ErrNotExist) && create:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		if err := writeSecret(s, dir, name, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
			return nil, err
		}
		return k, nil
	case err != nil:
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	k, err := parsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%s: the key must be ECDSA P-256", name)
	}
	return ek, nil
}
