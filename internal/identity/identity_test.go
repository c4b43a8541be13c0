package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net/url"
	"slices"
	"testing"
)

func testIdentity(t *testing.T) *Identity {
	t.Helper()
	id, err := LoadOrCreate(t.TempDir(), "charter:test", true, testSealer(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A node's certificate names it; an untrusted node's serves no one.
func TestIssueNodeCert(t *testing.T) {
	id := testIdentity(t)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, server := range []bool{false, true} {
		der, err := IssueNodeCert(id, &k.PublicKey, 7, "127.0.0.2", server)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := CertNodeID(c); !ok || got != 7 {
			t.Errorf("server=%v: names node %d (%v), want 7", server, got, ok)
		}
		hasServer := slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		names := len(c.IPAddresses) + len(c.DNSNames)
		if hasServer != server || (names > 0) != server {
			t.Errorf("server=%v: serverAuth %v, %d host names", server, hasServer, names)
		}
		pool := x509.NewCertPool()
		pool.AddCert(id.ServiceCert)
		_, err = c.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.2"})
		if (err == nil) != server {
			t.Errorf("server=%v: verifies as the service at 127.0.0.2: %v", server, err)
		}
	}
}

func TestCertNodeID(t *testing.T) {
	u := func(s string) *url.URL {
		p, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		uris []*url.URL
		id   uint64
		ok   bool
	}{
		{[]*url.URL{nodeIDURI(3)}, 3, true},
		{nil, 0, false},
		{[]*url.URL{u("urn:charter:node:0")}, 0, false},
		{[]*url.URL{u("urn:charter:node:x")}, 0, false},
		{[]*url.URL{nodeIDURI(3), nodeIDURI(4)}, 0, false},
		{[]*url.URL{u("https://charter/node/3")}, 0, false},
	} {
		id, ok := CertNodeID(&x509.Certificate{URIs: tc.uris})
		if id != tc.id || ok != tc.ok {
			t.Errorf("%v: %d %v, want %d %v", tc.uris, id, ok, tc.id, tc.ok)
		}
	}
}
