package node

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/charterlog/charter/internal/app"
	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/policy"
	"github.com/charterlog/charter/registry"
)

// bootstrapGovernance writes the governance state of a new network from its
// genesis (members, constitution, registration configuration). Only the
// leader does it, once; other nodes receive it through the ledger.
func (n *Node) bootstrapGovernance(ctx context.Context) error {
	g := n.genesis
	reg, err := json.Marshal(g.Registration)
	if err != nil {
		return err
	}
	self, err := n.genesisNodeWrites(g.Development)
	if err != nil {
		return err
	}
	// A development network (its own generated member) opens at once,
	// unless it was created to open by vote; a consortium's network opens
	// when its members vote transition_service_to_open, and nodes that join
	// before then are trusted on their attestation alone (CCF's rule).
	spec := gov.Genesis{Constitution: g.Constitution, SCITTConfiguration: reg, Open: g.MembersActive && !g.OpenByVote, Also: self,
		ServiceCertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: g.ServiceCert}))}
	for _, der := range g.Members {
		spec.Members = append(spec.Members, gov.MemberSpec{
			CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			Active:  g.MembersActive,
		})
	}
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := n.ledger.GetKV(gov.MapConstitution, []byte(gov.KeyConstitution)); err == nil {
			return nil
		}
		if leader, _ := n.raft.Leader(); leader {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			created, err := gov.Bootstrap(wctx, replicatedLedger{n.ledger, n.raft}, spec, gov.Config{})
			cancel()
			if err != nil {
				n.log.Warn("writing the governance state failed; retrying", "err", err)
			} else if created {
				n.log.Info("created governance", "members", len(spec.Members))
				return nil
			}
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// policyCache turns the governed registration configuration into the
// registry's policy, re-parsing only when the stored value changes.
type policyCache struct {
	l       *ledger.Ledger
	mu      sync.Mutex
	raw     string
	pol     registry.Policy
	version uint64
	valid   bool
}

func (c *policyCache) current() (registry.Policy, error) {
	v := c.l.WritesVersion()
	c.mu.Lock()
	if c.valid && c.version == v {
		defer c.mu.Unlock()
		return c.pol, nil
	}
	c.mu.Unlock()
	pol, err := c.load()
	if err != nil {
		return registry.Policy{}, err
	}
	c.mu.Lock()
	c.version, c.valid = v, true
	c.mu.Unlock()
	return pol, nil
}

func (c *policyCache) load() (registry.Policy, error) {
	raw, err := c.l.GetKV(gov.MapSCITTConfig, []byte("configuration"))
	if errors.Is(err, ledger.ErrNotFound) {
		raw = []byte("{}")
	} else if err != nil {
		return registry.Policy{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if string(raw) == c.raw && c.raw != "" {
		return c.pol, nil
	}
	var reg config.Registration
	if err := json.Unmarshal(raw, &reg); err != nil {
		return registry.Policy{}, fmt.Errorf("the governed registration configuration: %w", err)
	}
	if err := reg.Validate(); err != nil {
		return registry.Policy{}, err
	}
	c.raw = string(raw)
	c.pol = registry.Policy{AllowedAlgs: reg.Algorithms(), MaxStatementBytes: reg.MaxStatementBytes, TrustedCAs: reg.CAFingerprints()}
	return c.pol, nil
}

// regPolicyCache compiles the governed registration policy once per
// version (SHA-256 of its source).
type regPolicyCache struct {
	l       *ledger.Ledger
	mu      sync.Mutex
	rp      *registry.RegistrationPolicy
	version uint64
	valid   bool
}

func (c *regPolicyCache) current() (*registry.RegistrationPolicy, error) {
	v := c.l.WritesVersion()
	c.mu.Lock()
	if c.valid && c.version == v {
		defer c.mu.Unlock()
		return c.rp, nil
	}
	c.mu.Unlock()
	rp, err := c.load()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.rp, c.version, c.valid = rp, v, true
	c.mu.Unlock()
	return rp, nil
}

func (c *regPolicyCache) load() (*registry.RegistrationPolicy, error) {
	src, err := c.l.GetKV(gov.MapSCITTPolicy, []byte("policy"))
	if errors.Is(err, ledger.ErrNotFound) || (err == nil && len(src) == 0) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v := sha256.Sum256(src)
	c.mu.Lock()
	old := c.rp
	c.mu.Unlock()
	if old != nil && old.Version == v {
		return old, nil // the maps changed, the policy did not: keep its runtimes
	}
	p, err := policy.NewRegistrationPolicy(string(src), policy.Limits{})
	if err != nil {
		return nil, fmt.Errorf("the governed registration policy does not compile: %w", err)
	}
	return &registry.RegistrationPolicy{Policy: p, Version: v}, nil
}

// issuerKey resolves a kid-only statement's key from the issuer keys
// governance trusts (set_issuer_key: key "ISSUER|KID-HEX", value a PEM
// public key).
func (n *Node) issuerKey(issuer string, kid []byte) (crypto.PublicKey, error) {
	raw, err := n.ledger.GetKV(gov.MapIssuerKeys, []byte(issuer+"|"+hex.EncodeToString(kid)))
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, fmt.Errorf("no key trusted for issuer %q and kid %x (governance adds them with set_issuer_key)", issuer, kid)
	}
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		return nil, errors.New("the trusted issuer key is not PEM")
	}
	return x509.ParsePKIXPublicKey(b.Bytes)
}

// validateAppBundle is what set_js_app checks at proposal time beyond the
// bundle's JSON shape: the bundle is well-formed, every module compiles and
// links, and every endpoint's module exports its function.
func validateAppBundle(raw []byte) error {
	b, err := app.ParseBundle(raw)
	if err != nil {
		return err
	}
	_, err = app.Load(b, app.Options{Logger: slog.New(slog.DiscardHandler)})
	return err
}
