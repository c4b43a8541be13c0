package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/devpki"
	gocose "github.com/veraison/go-cose"
)

// publisher is one ES256 signing identity: a P-256 leaf key, its chain
// [leaf, CA] and the did:x509 issuer that names the chain, in the shape
// `charter keygen` makes.
type publisher struct {
	key    crypto.Signer
	chain  [][]byte
	issuer string
}

// newPublisher makes a self-signed CA and a leaf for cn (EKU codeSigning),
// both valid from an hour ago for a day: long enough for any run.
func newPublisher(cn string) (*publisher, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	c, err := devpki.New(cn, leafKey, caKey, time.Now().Add(-time.Hour), 25*time.Hour, 25*time.Hour)
	if err != nil {
		return nil, err
	}
	return &publisher{key: leafKey, chain: c.DER(), issuer: c.Issuer}, nil
}

// signer makes unique signed statements: payload i is payloadBytes long and
// starts with an 8-byte run nonce and the 8-byte counter i, so no two
// statements of a run, or of two runs against one node, are duplicates
// (a duplicate would be answered from the existing entry and flatter the
// server).
type signer struct {
	pubs         []*publisher
	payloadBytes int
	contentType  string // label 3; "" is application/octet-stream
	nonce        [8]byte
	fill         []byte
	next         atomic.Uint64
}

// minPayloadBytes is the room the nonce and the counter need.
const minPayloadBytes = 16

func newSigner(keys, payloadBytes int) (*signer, error) {
	if keys < 1 {
		return nil, fmt.Errorf("--keys %d: need at least one publisher key", keys)
	}
	if payloadBytes < minPayloadBytes {
		return nil, fmt.Errorf("--payload-bytes %d: need at least %d to keep payloads unique", payloadBytes, minPayloadBytes)
	}
	s := &signer{payloadBytes: payloadBytes, fill: make([]byte, payloadBytes)}
	if _, err := rand.Read(s.nonce[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(s.fill); err != nil {
		return nil, err
	}
	for i := range keys {
		p, err := newPublisher(fmt.Sprintf("charterbench publisher %d", i))
		if err != nil {
			return nil, err
		}
		s.pubs = append(s.pubs, p)
	}
	return s, nil
}

// sign makes the next statement; safe for concurrent use.
func (s *signer) sign() ([]byte, error) {
	i := s.next.Add(1) - 1
	payload := make([]byte, s.payloadBytes)
	copy(payload, s.fill)
	copy(payload, s.nonce[:])
	binary.BigEndian.PutUint64(payload[8:], i)
	p := s.pubs[i%uint64(len(s.pubs))]
	ct := s.contentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	return cose.SignStatement(rand.Reader, p.key, cose.SignOptions{
		Alg:         gocose.AlgorithmES256,
		Issuer:      p.issuer,
		Subject:     fmt.Sprintf("pkg:charterbench/item@%d", i),
		ContentType: ct,
		X5Chain:     p.chain,
	}, payload)
}

// presign signs n statements on every CPU and returns them in a pool.
func (s *signer) presign(n int) (*pool, error) {
	out := make([][]byte, n)
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		mu    sync.Mutex
		first error
	)
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				b, err := s.sign()
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				out[i] = b
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, fmt.Errorf("signing statements: %w", first)
	}
	return &pool{stmts: out, late: s.sign}, nil
}

// pool hands out pre-signed statements. When it runs dry it signs on the
// caller's goroutine and counts how often, so the report can say that the
// generator's own signing was inside the measurement.
type pool struct {
	stmts  [][]byte
	next   atomic.Int64
	late   func() ([]byte, error)
	signed atomic.Int64 // statements signed during the run
}

func (p *pool) take() ([]byte, error) {
	if i := p.next.Add(1) - 1; i < int64(len(p.stmts)) {
		b := p.stmts[i]
		p.stmts[i] = nil // let the memory go as the run proceeds
		return b, nil
	}
	p.signed.Add(1)
	return p.late()
}
