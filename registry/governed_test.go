package registry_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"sync"
	"testing"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/log"
	"github.com/charterlog/charter/registry"
	gocose "github.com/veraison/go-cose"
)

// govState is the applied maps as the ledger presents them: a version that
// moves with every write.
type govState struct {
	mu      sync.Mutex
	kv      map[string]string
	version uint64
}

func (s *govState) GetKV(m string, key []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.kv[m+"\x00"+string(key)]
	if !ok {
		return nil, log.ErrNotFound
	}
	return []byte(v), nil
}

func (s *govState) WritesVersion() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

func (s *govState) set(m, key, v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kv == nil {
		s.kv = map[string]string{}
	}
	s.kv[m+"\x00"+key] = v
	s.version++
}

func TestGovernedPolicy(t *testing.T) {
	st := &govState{}
	g := registry.NewGoverned(st)
	p, err := g.Policy()
	if err != nil || p.MaxStatementBytes != 1<<20 || len(p.AllowedAlgs) != 0 {
		t.Fatalf("no configuration: %+v, %v; want the defaults", p, err)
	}
	st.set(govwire.MapSCITTConfig, "configuration", `{"allowed_algorithms":["ES256"],"max_statement_bytes":4096}`)
	p, err = g.Policy()
	if err != nil || p.MaxStatementBytes != 4096 || len(p.AllowedAlgs) != 1 || p.AllowedAlgs[0] != gocose.AlgorithmES256 {
		t.Fatalf("after set_scitt_configuration: %+v, %v", p, err)
	}
	// A configuration that does not validate is an error, not the
	// previous one silently kept.
	st.set(govwire.MapSCITTConfig, "configuration", `{"allowed_algorithms":["MD5"]}`)
	if _, err := g.Policy(); err == nil || !strings.Contains(err.Error(), "MD5") {
		t.Fatalf("an unknown algorithm: %v", err)
	}
	st.set(govwire.MapSCITTConfig, "configuration", `{"max_statement_bytes":`)
	if _, err := g.Policy(); err == nil {
		t.Fatal("a configuration that is not JSON was accepted")
	}
}

func TestGovernedRegistrationPolicy(t *testing.T) {
	st := &govState{}
	g := registry.NewGoverned(st)
	if rp, err := g.RegistrationPolicy(); rp != nil || err != nil {
		t.Fatalf("no policy: %v, %v", rp, err)
	}
	src := `export function apply(phdr) { return true; }`
	st.set(govwire.MapSCITTPolicy, "policy", src)
	rp, err := g.RegistrationPolicy()
	if err != nil || rp == nil || rp.Version != sha256.Sum256([]byte(src)) {
		t.Fatalf("after set_scitt_policy: %+v, %v", rp, err)
	}
	// Another map changes, the policy does not: the compiled policy (and
	// its pooled runtimes) is kept.
	st.set(govwire.MapSCITTConfig, "configuration", `{}`)
	if rp2, err := g.RegistrationPolicy(); err != nil || rp2 != rp {
		t.Fatalf("an unrelated write recompiled the policy: %p %p %v", rp2, rp, err)
	}
	st.set(govwire.MapSCITTPolicy, "policy", `export function apply( {`)
	if _, err := g.RegistrationPolicy(); err == nil || !strings.Contains(err.Error(), "does not compile") {
		t.Fatalf("a policy that does not compile: %v", err)
	}
	st.set(govwire.MapSCITTPolicy, "policy", "")
	if rp, err := g.RegistrationPolicy(); rp != nil || err != nil {
		t.Fatalf("an emptied policy: %v, %v", rp, err)
	}
}

func TestGovernedIssuerKey(t *testing.T) {
	st := &govState{}
	g := registry.NewGoverned(st)
	kid := []byte{0x01, 0xfe}
	if _, err := g.IssuerKey("did:web:x", kid); err == nil || !strings.Contains(err.Error(), "set_issuer_key") {
		t.Fatalf("an untrusted issuer key: %v", err)
	}
	st.set(govwire.MapIssuerKeys, "did:web:x|01fe", "not pem")
	if _, err := g.IssuerKey("did:web:x", kid); err == nil {
		t.Fatal("a stored key that is not PEM was accepted")
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	st.set(govwire.MapIssuerKeys, "did:web:x|01fe", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	got, err := g.IssuerKey("did:web:x", kid)
	if err != nil || !k.PublicKey.Equal(got) {
		t.Fatalf("the trusted key: %v, %v", got, err)
	}
	if _, err := g.IssuerKey("did:web:y", kid); err == nil {
		t.Fatal("another issuer's kid resolved to this issuer's key")
	}
}
