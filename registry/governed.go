package registry

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"

	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/log"
	"github.com/charterlog/charter/policy"
)

// GovernedState is the applied state the governed registration settings
// are read from: the maps, and a version that changes whenever they do
// (the ledger's WritesVersion), so that an unchanged state is not re-read.
type GovernedState interface {
	GetKV(m string, key []byte) ([]byte, error)
	WritesVersion() uint64
}

// Governed reads what governance decides about registration from the
// applied state, for a Service's CurrentPolicy, CurrentRegistrationPolicy
// and IssuerKey: the registration configuration (public:scitt.configuration),
// the JS registration policy (public:scitt.policy) and the trusted issuer
// keys (public:scitt.issuer_keys). It re-parses the configuration and
// recompiles the policy only when the stored value changes.
type Governed struct {
	pc  policyCache
	rpc regPolicyCache
}

// NewGoverned reads the governed settings from st.
func NewGoverned(st GovernedState) *Governed {
	return &Governed{pc: policyCache{l: st}, rpc: regPolicyCache{l: st}}
}

// Policy is the registration configuration in force (a Service's
// CurrentPolicy); an absent configuration is the default one.
func (g *Governed) Policy() (Policy, error) { return g.pc.current() }

// RegistrationPolicy is the JS registration policy in force (a Service's
// CurrentRegistrationPolicy), nil when governance set none.
func (g *Governed) RegistrationPolicy() (*RegistrationPolicy, error) { return g.rpc.current() }

// policyCache turns the governed registration configuration into the
// registry's policy, re-parsing only when the stored value changes.
type policyCache struct {
	l       GovernedState
	mu      sync.Mutex
	raw     string
	pol     Policy
	version uint64
	valid   bool
}

func (c *policyCache) current() (Policy, error) {
	v := c.l.WritesVersion()
	c.mu.Lock()
	if c.valid && c.version == v {
		defer c.mu.Unlock()
		return c.pol, nil
	}
	c.mu.Unlock()
	pol, err := c.load()
	if err != nil {
		return Policy{}, err
	}
	c.mu.Lock()
	c.version, c.valid = v, true
	c.mu.Unlock()
	return pol, nil
}

func (c *policyCache) load() (Policy, error) {
	raw, err := c.l.GetKV(govwire.MapSCITTConfig, []byte("configuration"))
	if errors.Is(err, log.ErrNotFound) {
		raw = []byte("{}")
	} else if err != nil {
		return Policy{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if string(raw) == c.raw && c.raw != "" {
		return c.pol, nil
	}
	var reg config.Registration
	if err := json.Unmarshal(raw, &reg); err != nil {
		return Policy{}, fmt.Errorf("the governed registration configuration: %w", err)
	}
	if err := reg.Validate(); err != nil {
		return Policy{}, err
	}
	c.raw = string(raw)
	c.pol = Policy{AllowedAlgs: reg.Algorithms(), MaxStatementBytes: reg.MaxStatementBytes, TrustedCAs: reg.CAFingerprints()}
	return c.pol, nil
}

// regPolicyCache compiles the governed registration policy once per
// version (SHA-256 of its source).
type regPolicyCache struct {
	l       GovernedState
	mu      sync.Mutex
	rp      *RegistrationPolicy
	version uint64
	valid   bool
}

func (c *regPolicyCache) current() (*RegistrationPolicy, error) {
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

func (c *regPolicyCache) load() (*RegistrationPolicy, error) {
	src, err := c.l.GetKV(govwire.MapSCITTPolicy, []byte("policy"))
	if errors.Is(err, log.ErrNotFound) || (err == nil && len(src) == 0) {
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
	return &RegistrationPolicy{Policy: p, Version: v}, nil
}

// IssuerKey resolves a kid-only statement's key from the issuer keys
// governance trusts (set_issuer_key: key "ISSUER|KID-HEX", value a PEM
// public key); it is a Service's IssuerKey.
func (g *Governed) IssuerKey(issuer string, kid []byte) (crypto.PublicKey, error) {
	raw, err := g.pc.l.GetKV(govwire.MapIssuerKeys, []byte(issuer+"|"+hex.EncodeToString(kid)))
	if errors.Is(err, log.ErrNotFound) {
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
