// Package joinclient is the joining node's side of the join protocol
// (internal/join) over HTTPS: it sends the node's signed request to a
// network (POST join.Path), checks what the answer gives (a node
// certificate for this node's key, a note verifier key) and keeps it in the
// data directory, and once governance trusts the node it opens the
// service's secrets sealed to its key and keeps them sealed under the
// node's own sealer. JoinNetwork is `charterd join`'s first step: the
// node's key and evidence, and the request to the network.
//
// It is apart from internal/join, which speaks no HTTP, and from
// internal/node, which only wires it: the node hands it the data directory,
// the node key, its evidence and the HTTP clients to use (one pinned to the
// service certificate before the node is a member, the leader's peer
// client after).
package joinclient

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	charterclient "github.com/charterlog/charter/client"
	"github.com/charterlog/charter/internal/attest"
	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/durable"
	"github.com/charterlog/charter/internal/identity"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/seal"
	"golang.org/x/mod/sumdb/note"
)

// ErrRefused marks an answer that retrying will not change.
var ErrRefused = errors.New("join refused")

// maxAnswer bounds how much of an answer is read: a join response is a
// certificate, a key and the sealed secrets, far below it.
const maxAnswer = 1 << 20

// Joiner is the joining node's side: its key, evidence and request.
type Joiner struct {
	url      string
	key      *ecdsa.PrivateKey
	body     []byte
	evidence []byte
	dir      string
	sealer   *seal.Sealer
	// Retry is how long to wait between asks (Join, AwaitSecrets);
	// New sets half a second.
	Retry time.Duration
}

// New is the joiner of the node at selfURL with key and its evidence,
// keeping what it is given in dir, secrets sealed by sealer.
func New(dir string, sealer *seal.Sealer, selfURL string, key *ecdsa.PrivateKey, ev *attest.Evidence) (*Joiner, error) {
	raw, err := attest.MarshalEvidence(ev)
	if err != nil {
		return nil, err
	}
	body, err := join.RequestBody(selfURL, key, raw)
	if err != nil {
		return nil, err
	}
	return &Joiner{url: selfURL, key: key, body: body, evidence: raw, dir: dir, sealer: sealer, Retry: 500 * time.Millisecond}, nil
}

// RequestBody is the body of POST /node/join for a node at selfURL
// with key and the evidence that binds it, signed by key.
func RequestBody(selfURL string, key *ecdsa.PrivateKey, ev *attest.Evidence) ([]byte, error) {
	raw, err := attest.MarshalEvidence(ev)
	if err != nil {
		return nil, err
	}
	return join.RequestBody(selfURL, key, raw)
}

// PinnedClient is the client a node that is not yet a member asks the
// network with: it trusts only the network's service certificate, which
// the operator put in dir (GET /node/network on any node gives it), so
// nothing secret is copied by hand and no other server is believed.
func PinnedClient(dir string) (*http.Client, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, identity.FileServiceCert))
	if err != nil {
		return nil, fmt.Errorf("join: put the network's service certificate (GET /node/network, service_certificate) in %s: %w", filepath.Join(dir, identity.FileServiceCert), err)
	}
	cert, err := identity.ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("join: %s: %w", identity.FileServiceCert, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	return &http.Client{Transport: tr, Timeout: time.Minute}, nil
}

// Ask sends the join request once and keeps what the answer gives: the node
// certificate and note verifier key, and the secrets once released. An
// answer other than 503 (no leader yet) and 429 (joins are rate-limited) is
// ErrRefused.
func (j *Joiner) Ask(ctx context.Context, client *http.Client, target string) (*join.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(target, "/")+join.Path, bytes.NewReader(j.body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode != http.StatusOK {
		title, detail, ok := charterclient.ParseProblem(b)
		if !ok {
			title, detail = http.StatusText(resp.StatusCode), string(b)
		}
		err := fmt.Errorf("%s answered %s: %s: %s", target, resp.Status, title, detail)
		// 503 (no leader yet) and 429 (joins are rate-limited) pass.
		if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests {
			err = fmt.Errorf("%w: %w", ErrRefused, err)
		}
		return nil, err
	}
	var jr join.Response
	if err := json.Unmarshal(b, &jr); err != nil || jr.NodeID == 0 {
		return nil, fmt.Errorf("join: bad answer from %s: %q", target, b)
	}
	if _, err := note.NewVerifier(jr.NoteVerifier); err != nil {
		return nil, fmt.Errorf("join: %s sent a bad note verifier key: %v", target, err)
	}
	cert, err := identity.ParseCertPEM([]byte(jr.NodeCert))
	if pub, ok := publicKeyOf(cert); err != nil || !ok || !pub.Equal(&j.key.PublicKey) {
		return nil, fmt.Errorf("join: %s sent a node certificate that is not for this node's key", target)
	}
	if err := durable.WriteFile(filepath.Join(j.dir, identity.FileNodeCert), []byte(jr.NodeCert), 0o644); err != nil {
		return nil, err
	}
	if err := durable.WriteFile(filepath.Join(j.dir, identity.FileNoteVerifier), []byte(jr.NoteVerifier+"\n"), 0o644); err != nil {
		return nil, err
	}
	if len(jr.Sealed) > 0 {
		if err := j.keepSecrets(jr.NodeID, jr.Sealed, jr.NoteVerifier); err != nil {
			return nil, err
		}
	}
	return &jr, nil
}

func publicKeyOf(c *x509.Certificate) (*ecdsa.PublicKey, bool) {
	if c == nil {
		return nil, false
	}
	k, ok := c.PublicKey.(*ecdsa.PublicKey)
	return k, ok
}

// keepSecrets opens the secrets sealed to this node's key and keeps them
// in the data directory, sealed under its own sealing key, the service key
// last: its presence is what tells a restarting node it holds the secrets
// (identity.Load), so a crash part-way leaves a node that asks again.
func (j *Joiner) keepSecrets(id uint64, sealed []byte, noteVerifier string) error {
	s, err := join.OpenSecrets(j.key, id, j.evidence, sealed)
	if err != nil {
		return err
	}
	k, err := x509.ParsePKCS8PrivateKey(s.ServiceKey)
	if err != nil {
		return fmt.Errorf("join: released service key: %w", err)
	}
	sk, ok := k.(*ecdsa.PrivateKey)
	certPEM, err := os.ReadFile(filepath.Join(j.dir, identity.FileServiceCert))
	if err != nil {
		return err
	}
	cert, err := identity.ParseCertPEM(certPEM)
	if pub, okc := publicKeyOf(cert); !ok || err != nil || !okc || !pub.Equal(&sk.PublicKey) {
		return errors.New("join: the released service key does not match the service certificate")
	}
	if len(s.LedgerSecret) != identity.LedgerSecretSize {
		return errors.New("join: the released ledger secret has the wrong size")
	}
	return identity.StoreReleased(j.dir, j.sealer, s.ServiceKey, s.NoteKey, noteVerifier, s.LedgerSecret)
}

// Join asks target until it admits the node or refuses it (ErrRefused),
// retrying while the network answers 503 or 429 or cannot be reached,
// until ctx ends; it returns the node id the network gave.
func (j *Joiner) Join(ctx context.Context, client *http.Client, target string) (uint64, error) {
	for {
		jr, err := j.Ask(ctx, client, target)
		if err == nil {
			return jr.NodeID, nil
		}
		if errors.Is(err, ErrRefused) {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, errors.Join(err, ctx.Err())
		case <-time.After(j.Retry):
		}
	}
}

// Leader is who to ask for the secrets now: the leader's URL and the
// client that reaches it; ok is false while there is no leader.
type Leader func() (url string, client *http.Client, ok bool)

// AwaitSecrets asks the leader every Retry until the network releases the
// service's secrets to this node (governance made it Trusted) and keeps
// them; the node follows the ledger meanwhile. It returns ctx's error if
// ctx ends first.
func (j *Joiner) AwaitSecrets(ctx context.Context, leader Leader, log *slog.Logger) error {
	logged := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(j.Retry):
		}
		u, client, ok := leader()
		if !ok {
			continue
		}
		jr, err := j.Ask(ctx, client, u)
		switch {
		case err != nil:
			if time.Since(logged) > 10*time.Second {
				log.Warn("asking the leader for the service's secrets", "err", err)
				logged = time.Now()
			}
		case len(jr.Sealed) > 0:
			return nil
		case time.Since(logged) > 10*time.Second:
			log.Info("waiting for governance to trust this node (transition_node_to_trusted)", "node_id", jr.NodeID, "status", jr.Status)
			logged = time.Now()
		}
	}
}

// JoinNetwork asks the network at target to admit the node configured by
// cfg, and returns the node id it was given. The data directory must hold
// the network's service certificate (public: GET /node/network on any
// node), which the request pins; nothing secret is copied by hand. The
// node's evidence comes from cfg.Platform. It retries while the network
// answers 503 (no leader) or 429 (joins rate-limited), until ctx ends.
func JoinNetwork(ctx context.Context, cfg config.Config, target string) (uint64, error) {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil || port == "0" || host == "" || net.ParseIP(host).IsUnspecified() {
		return 0, fmt.Errorf("join: addr %q must be the concrete host:port peers will reach this node at", cfg.Addr)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return 0, err
	}
	client, err := PinnedClient(cfg.DataDir)
	if err != nil {
		return 0, err
	}
	sealer, err := identity.OpenSealer(cfg.Platform, cfg.DataDir, cfg.SealKeyFile)
	if err != nil {
		return 0, fmt.Errorf("join: %w", err)
	}
	key, err := identity.LoadOrCreateNodeKey(cfg.DataDir, sealer)
	if err != nil {
		return 0, fmt.Errorf("join: node key: %w", err)
	}
	ev, err := attest.NodeEvidence(ctx, cfg.Platform, key)
	if err != nil {
		return 0, fmt.Errorf("join: attestation: %w", err)
	}
	j, err := New(cfg.DataDir, sealer, "https://"+cfg.Addr, key, ev)
	if err != nil {
		return 0, err
	}
	return j.Join(ctx, client, target)
}
