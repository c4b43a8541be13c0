package ledgerverify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/genesis"
	"github.com/charterlog/charter/internal/ledgerfiles"
	"github.com/charterlog/charter/log"
	gocose "github.com/veraison/go-cose"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ledger builds a ledger of n transactions as a service writes it: the
// genesis (a service certificate and note key), registrations of signed
// COSE statements of about 1 KiB, and a checkpoint every `every`
// transactions signing the tree before it with the service key and the
// note key.
func ledger(t testing.TB, n, every int) (recs [][]byte, certDER []byte) {
	t.Helper()
	svc, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Charter Service"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &svc.PublicKey, svc)
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey, _ := note.GenerateKey(rand.Reader, "charter:bench")
	signer, _ := note.NewSigner(skey)
	kid, _ := cose.KeyID(&svc.PublicKey)
	g, _ := (&genesis.Genesis{Issuer: "charter:bench", ServiceCert: certDER, NoteVerifierKey: vkey, CreatedAt: 1}).Marshal()
	hashes := map[int64]tlog.Hash{}
	read := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = hashes[x]
		}
		return out, nil
	})
	add := func(rec *log.Record) {
		seqno := int64(len(recs))
		rec.Seqno = uint64(seqno + 1)
		if rec.Type != log.TxRegistration {
			rec.Entry = log.ComputeEntry(rec.Type, rec.View, rec.Seqno, rec.Body)
		}
		hs, err := tlog.StoredHashesForRecordHash(seqno, tlog.RecordHash(rec.Entry[:]), read)
		if err != nil {
			t.Fatal(err)
		}
		for i, h := range hs {
			hashes[tlog.StoredHashIndex(0, seqno)+int64(i)] = h
		}
		raw, err := log.MarshalRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, raw)
	}
	add(&log.Record{Type: log.TxGenesis, View: 1, Body: g})
	pub, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	stmtSigner, _ := gocose.NewSigner(gocose.AlgorithmES256, pub)
	payload := make([]byte, 1000)
	for len(recs) < n {
		if len(recs)%every == 0 {
			size := uint64(len(recs))
			root, err := tlog.TreeHash(int64(size), read)
			if err != nil {
				t.Fatal(err)
			}
			prot, sig, err := cose.SignTreeHead(rand.Reader, svc, gocose.AlgorithmES256, kid, cose.ReceiptClaims{Issuer: "charter:bench", TreeSize: size}, root[:])
			if err != nil {
				t.Fatal(err)
			}
			nt, err := log.SignCheckpointNote("charter:bench", size, root, signer)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := log.MarshalCheckpoint(&log.Checkpoint{TreeSize: size, Root: root, Protected: prot, Signature: sig, Note: nt})
			add(&log.Record{Type: log.TxCheckpoint, View: 1, Body: body})
			continue
		}
		msg := gocose.NewSign1Message()
		msg.Headers.Protected.SetAlgorithm(gocose.AlgorithmES256)
		payload[0], payload[1], payload[2] = byte(len(recs)), byte(len(recs)>>8), byte(len(recs)>>16)
		msg.Payload = payload
		if err := msg.Sign(rand.Reader, nil, stmtSigner); err != nil {
			t.Fatal(err)
		}
		body, err := msg.MarshalCBOR()
		if err != nil {
			t.Fatal(err)
		}
		s, err := cose.ParseSign1(body, cose.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		add(&log.Record{Type: log.TxRegistration, View: 1, Entry: s.LeafEntry(), Body: body})
	}
	return recs, certDER
}

func verifyAll(recs [][]byte, cert []byte) (*Report, error) {
	v := New(cert)
	for i, raw := range recs {
		if err := v.Add(uint64(i+1), raw); err != nil {
			return nil, err
		}
	}
	return v.Finish()
}

func TestVerify(t *testing.T) {
	recs, cert := ledger(t, 300, 40)
	rep, err := verifyAll(recs, cert)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Transactions != 300 || rep.Checkpoints != 7 || rep.Registrations != 292 || rep.CheckpointSize != 280 {
		t.Fatalf("report %+v", rep)
	}
	// Pinned to another service: another network's ledger.
	_, other := ledger(t, 2, 40)
	if _, err := verifyAll(recs, other); !errors.Is(err, ErrGenesis) {
		t.Fatalf("another service's certificate: %v", err)
	}
}

// Each way a history can be wrong is found, with its own error.
func TestVerifyFindsForgery(t *testing.T) {
	recs, cert := ledger(t, 120, 40)
	edit := func(i int, f func(r *log.Record)) [][]byte {
		out := append([][]byte(nil), recs...)
		r, _ := log.UnmarshalRecord(out[i])
		f(r)
		out[i], _ = log.MarshalRecord(r)
		return out
	}
	for _, c := range []struct {
		name string
		recs [][]byte
		want error
		says string
	}{
		{"altered statement", edit(10, func(r *log.Record) { r.Body[len(r.Body)-3] ^= 1 }), ErrRecord, "leaf entry is not the hash"},
		{"removed transaction", append(append([][]byte(nil), recs[:50]...), recs[51:]...), ErrRecord, "where 51 belongs"},
		{"forged checkpoint signature", edit(80, func(r *log.Record) {
			cp, _ := log.UnmarshalCheckpoint(r.Body)
			cp.Signature[3] ^= 1
			r.Body, _ = log.MarshalCheckpoint(cp)
			r.Entry = log.ComputeEntry(r.Type, r.View, r.Seqno, r.Body)
		}), ErrCheckpoint, "is not the service key's"},
		{"checkpoint of another root", edit(80, func(r *log.Record) {
			cp, _ := log.UnmarshalCheckpoint(r.Body)
			cp.Root[0] ^= 1
			r.Body, _ = log.MarshalCheckpoint(cp)
			r.Entry = log.ComputeEntry(r.Type, r.View, r.Seqno, r.Body)
		}), ErrCheckpoint, "the records give"},
		{"rewritten history, re-chained", edit(30, func(r *log.Record) {
			r.Type, r.Body = log.TxWrites, []byte("forged")
			r.Entry = log.ComputeEntry(r.Type, r.View, r.Seqno, r.Body)
		}), ErrCheckpoint, "the records give"},
	} {
		_, err := verifyAll(c.recs, cert)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v; want %v saying %q", c.name, err, c.want, c.says)
		}
	}
}

// BenchmarkVerify verifies a ledger of 1 KiB registrations with a
// checkpoint every 5000 (the default checkpoint_max_tx), records already
// read: the rate `charter ledger verify` can reach past the disk.
func BenchmarkVerify(b *testing.B) {
	recs, cert := ledger(b, 50_000, 5000)
	b.ResetTimer()
	for range b.N {
		if _, err := verifyAll(recs, cert); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(recs)*b.N)/b.Elapsed().Seconds(), "tx/s")
}

// BenchmarkVerifyFiles is what `charter ledger verify DIR` does: read the
// chunk files (in the page cache) and verify every record.
func BenchmarkVerifyFiles(b *testing.B) {
	recs, cert := ledger(b, 50_000, 5000)
	dir := b.TempDir()
	w, err := ledgerfiles.OpenWriter(dir, 0, 20_000)
	if err != nil {
		b.Fatal(err)
	}
	for i, raw := range recs {
		if err := w.Append(uint64(i+1), raw); err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	b.ResetTimer()
	for range b.N {
		v := New(cert)
		if _, err := ledgerfiles.Scan(dir, v.Add); err != nil {
			b.Fatal(err)
		}
		if _, err := v.Finish(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(recs)*b.N)/b.Elapsed().Seconds(), "tx/s")
}

// FuzzAdd: records from ledger files are untrusted; after a valid history,
// any next record is checked without a panic, and one that is accepted
// is one whose entry is its body's hash at the next seqno.
func FuzzAdd(f *testing.F) {
	recs, cert := ledger(f, 12, 5)
	for _, r := range recs[8:] {
		f.Add(r)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		v := New(cert)
		for i, r := range recs[:8] {
			if err := v.Add(uint64(i+1), r); err != nil {
				t.Fatal(err)
			}
		}
		if err := v.Add(9, raw); err == nil {
			rec, err := log.UnmarshalRecord(raw)
			if err != nil || rec.Seqno != 9 {
				t.Fatalf("accepted a record that is not transaction 9: %v", err)
			}
		}
		_, _ = v.Finish()
	})
}
