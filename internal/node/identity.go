package node

import (
	"context"
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
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/charterlog/charter/internal/config"
	"golang.org/x/mod/sumdb/note"
)

// Identity is the service's keys as this node holds them.
//
// The service key (P-256, ES256) signs receipts and is the CA of the service
// certificate that clients pin; the note key (Ed25519) signs C2SP
// checkpoints. In this version the first node creates both and keeps them in
// its data directory (0600); attested key release to joining nodes arrives
// with SEV-SNP attestation.
type Identity struct {
	ServiceKey     *ecdsa.PrivateKey
	ServiceCert    *x509.Certificate
	ServiceCertPEM []byte
	NoteSigner     note.Signer
	NoteVerifier   string // the note verifier key, name+hash+key
}

// Files in the data directory.
const (
	fileServiceKey  = "service_key.pem"
	fileServiceCert = "service_cert.pem"
	fileNoteKey     = "note_key.txt"
	fileMemberCert  = "member0_cert.pem"
	fileMemberKey   = "member0_privk.pem"
	fileNodeURL     = "node.url"
)

// loadOrCreateIdentity reads the identity from dir, creating any part that
// is missing. Creation happens only before genesis (the caller checks), so a
// crash half-way leaves files that the next start completes, never a second
// identity for a network that exists.
func loadOrCreateIdentity(dir, issuer string, create bool) (*Identity, error) {
	id := &Identity{}
	ek, err := loadOrCreateP256Key(dir, fileServiceKey, create)
	if err != nil {
		return nil, err
	}
	id.ServiceKey = ek

	certPEM, err := os.ReadFile(filepath.Join(dir, fileServiceCert))
	switch {
	case errors.Is(err, fs.ErrNotExist) && create:
		der, err := selfSigned(ek, "Charter Service", true)
		if err != nil {
			return nil, err
		}
		certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := writeFileAtomic(dir, fileServiceCert, certPEM, 0o644); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("service certificate: %w", err)
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fileServiceCert, err)
	}
	if !cert.PublicKey.(*ecdsa.PublicKey).Equal(&ek.PublicKey) {
		return nil, fmt.Errorf("%s does not belong to %s", fileServiceCert, fileServiceKey)
	}
	id.ServiceCert, id.ServiceCertPEM = cert, certPEM

	skey, err := os.ReadFile(filepath.Join(dir, fileNoteKey))
	switch {
	case errors.Is(err, fs.ErrNotExist) && create:
		s, v, err := note.GenerateKey(rand.Reader, issuer)
		if err != nil {
			return nil, err
		}
		skey = []byte(s + "\n" + v + "\n")
		if err := writeFileAtomic(dir, fileNoteKey, skey, 0o600); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("note key: %w", err)
	}
	// The file holds the signer key, then its verifier key.
	lines := strings.Fields(string(skey))
	if len(lines) != 2 {
		return nil, fmt.Errorf("%s: want the signer key and the verifier key on two lines", fileNoteKey)
	}
	signer, err := note.NewSigner(lines[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fileNoteKey, err)
	}
	if _, err := note.NewVerifier(lines[1]); err != nil {
		return nil, fmt.Errorf("%s: verifier key: %w", fileNoteKey, err)
	}
	id.NoteSigner, id.NoteVerifier = signer, lines[1]
	return id, nil
}

// createMember writes a member identity (member0) for a new network.
func createMember(dir string) (*x509.Certificate, error) {
	if certPEM, err := os.ReadFile(filepath.Join(dir, fileMemberCert)); err == nil {
		return parseCertPEM(certPEM)
	}
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(dir, fileMemberKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	certDER, err := selfSigned(k, "member0", false)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(dir, fileMemberCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}), 0o644); err != nil {
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

// nodeTLSCertificate issues this node's TLS certificate under the service
// certificate, for the listen host and the loopback names. It serves
// clients and authenticates this node to its peers (mutual TLS).
func nodeTLSCertificate(id *Identity, key *ecdsa.PrivateKey, host string) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "Charter node"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else if host != "" && ip == nil {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, id.ServiceCert, &key.PublicKey, id.ServiceKey)
	if err != nil {
		return tls.Certificate{}, err
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

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// writeFileAtomic writes name in dir so that after a crash it is either
// absent or complete: write a temporary file, fsync it, rename it into
// place, fsync the directory.
func writeFileAtomic(dir, name string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// CreateNetworkIdentity makes a new network's service identity and first
// member in dir, for a launcher that then copies them to each node's data
// directory (CopyNetworkIdentity). It refuses a dir that already has one.
func CreateNetworkIdentity(dir, issuer string) error {
	if _, err := os.Stat(filepath.Join(dir, fileServiceKey)); err == nil {
		return fmt.Errorf("%s already holds a service identity", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if _, err := loadOrCreateIdentity(dir, issuer, true); err != nil {
		return err
	}
	_, err := createMember(dir)
	return err
}

// CopyNetworkIdentity copies the service identity and the first member's
// certificate from src to a node's data directory dst.
func CopyNetworkIdentity(src, dst string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		perm os.FileMode
	}{{fileServiceKey, 0o600}, {fileServiceCert, 0o644}, {fileNoteKey, 0o600}, {fileMemberCert, 0o644}} {
		b, err := os.ReadFile(filepath.Join(src, f.name))
		if err != nil {
			return err
		}
		if err := writeFileAtomic(dst, f.name, b, f.perm); err != nil {
			return err
		}
	}
	return nil
}

// JoinNetwork asks the network at target to add the node configured by cfg,
// which must hold the network's identity, and returns its new node id.
func JoinNetwork(ctx context.Context, cfg config.Config, target string) (uint64, error) {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil || port == "0" || host == "" || net.ParseIP(host).IsUnspecified() {
		return 0, fmt.Errorf("join: addr %q must be the concrete host:port peers will reach this node at", cfg.Addr)
	}
	id, err := loadOrCreateIdentity(cfg.DataDir, "", false)
	if err != nil {
		return 0, fmt.Errorf("join: the network's service identity must be in %s: %w", cfg.DataDir, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return 0, err
	}
	cert, err := nodeTLSCertificate(id, key, host)
	if err != nil {
		return 0, err
	}
	n := &Node{id: id, tlsCert: cert}
	return Join(ctx, n.newPeerClient(), target, "https://"+cfg.Addr)
}

// fileNodeKey is the node's own identity key (P-256): its TLS key, the key
// its attestation report binds (report_data = SHA-256 of its public key),
// and the key secrets are released to. It never leaves the node.
const fileNodeKey = "node_key.pem"

// loadOrCreateNodeKey reads the node key from dir, creating it on first use.
func loadOrCreateNodeKey(dir string) (*ecdsa.PrivateKey, error) {
	return loadOrCreateP256Key(dir, fileNodeKey, true)
}

// loadOrCreateP256Key reads the ECDSA P-256 key in dir/name (PKCS#8 PEM);
// if it is absent and create is set, it generates one and writes it
// atomically (0600) first.
func loadOrCreateP256Key(dir, name string, create bool) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
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
		if err := writeFileAtomic(dir, name, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
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
