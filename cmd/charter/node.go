package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/charterlog/charter/client"
	"github.com/charterlog/charter/internal/attest"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/log"
)

func init() {
	register(command{name: "node verify-quotes", summary: "re-verify, offline, every node's attestation evidence recorded in the ledger", run: runNodeVerifyQuotes})
}

// runNodeVerifyQuotes downloads the ledger, replays its governance writes
// and re-verifies every node's evidence, at the position it was recorded,
// against the measurements and host data governance had approved there.
// Each transaction that recorded evidence is checked to be in the ledger
// with its receipt, under the service certificate given with --cacert, so
// nothing rests on the word of the node answering.
func runNodeVerifyQuotes(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("node verify-quotes", "--url URL --cacert SERVICE.pem [--amd-roots CHAIN.pem --amd-product-line Milan] [--cert-cache DIR]", stderr)
	var sf serviceFlags
	fs.StringVar(&sf.url, "url", "", "service base URL")
	fs.StringVar(&sf.cacert, "cacert", "", "the service certificate (PEM): pins TLS and is the key receipts must verify with")
	roots := fs.String("amd-roots", "", "AMD ASK+ARK chain (KDS cert_chain PEM) to trust instead of the roots go-sev-guest embeds")
	product := fs.String("amd-product-line", "", "product line of --amd-roots (Milan, Genoa, Turin)")
	cache := fs.String("cert-cache", "", "directory of VCEK/VLEK certificates for reports whose certificate table lacks them")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if sf.cacert == "" || fs.NArg() != 0 {
		return usageError("want --url and --cacert (the service certificate), and no arguments")
	}
	certPEM, err := os.ReadFile(sf.cacert)
	if err != nil {
		return fmt.Errorf("--cacert: %w", err)
	}
	keys, err := client.ParseServiceKeys(certPEM)
	if err != nil {
		return fmt.Errorf("--cacert: %w", err)
	}
	base := attest.Policy{CertCacheDir: *cache}
	if (*roots == "") != (*product == "") {
		return usageError("--amd-roots and --amd-product-line go together")
	}
	if *roots != "" {
		chain, err := os.ReadFile(*roots)
		if err != nil {
			return fmt.Errorf("--amd-roots: %w", err)
		}
		if base.Roots, err = attest.RootsFromKDSChain(*product, chain); err != nil {
			return fmt.Errorf("--amd-roots: %w", err)
		}
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	recs, err := c.FetchLedger(ctx, 1, 0, nil)
	if err != nil {
		return fmt.Errorf("fetching the ledger: %w", err)
	}
	results, err := replayQuotes(ctx, recs, base)
	if err != nil {
		return err
	}
	failed := 0
	latest := map[uint64]*quoteResult{}
	for i := range results {
		r := &results[i]
		if r.err == nil {
			rcpt, err := c.TransactionReceipt(ctx, r.txid)
			if err == nil {
				_, err = client.VerifyTransaction(r.rawRecord, rcpt, keys)
			}
			if err != nil {
				r.err = fmt.Errorf("the transaction that recorded it is not proven in the ledger: %w", err)
			}
		}
		latest[r.nodeID] = r
		if r.err != nil {
			failed++
			fmt.Fprintf(stdout, "FAIL node %d (transaction %s): %v\n", r.nodeID, r.txid, r.err)
			continue
		}
		fmt.Fprintf(stdout, "ok   node %d: %s evidence, measurement %s, verified as recorded in transaction %s\n", r.nodeID, r.platform, r.measurement, r.txid)
	}
	// What /node/quotes serves must be what the ledger holds.
	served, err := c.Quotes(ctx)
	if err != nil {
		return fmt.Errorf("fetching /node/quotes: %w", err)
	}
	var q struct {
		Quotes []struct {
			NodeID   uint64 `json:"node_id"`
			Evidence []byte `json:"evidence"`
		} `json:"quotes"`
	}
	if err := json.Unmarshal(served, &q); err != nil {
		return fmt.Errorf("/node/quotes: %w", err)
	}
	for _, s := range q.Quotes {
		if r := latest[s.NodeID]; r == nil || !bytes.Equal(r.evidence, s.Evidence) {
			failed++
			fmt.Fprintf(stdout, "FAIL node %d: /node/quotes serves evidence the ledger does not hold for it\n", s.NodeID)
		}
	}
	fmt.Fprintf(stdout, "%d evidence records in %d transactions checked: %d failed\n", len(results), len(recs), failed)
	if failed > 0 {
		return fmt.Errorf("%d evidence records did not verify", failed)
	}
	return nil
}

type quoteResult struct {
	nodeID      uint64
	txid        log.TxID
	rawRecord   []byte
	platform    string
	measurement string
	evidence    []byte
	err         error
}

// replayQuotes walks the ledger's write sets in order, keeping the
// approved measurements and host data, and verifies each node record whose
// evidence changed against the approvals in force after its transaction.
func replayQuotes(ctx context.Context, recs []*log.Record, base attest.Policy) ([]quoteResult, error) {
	approved := map[string]map[string]bool{
		govwire.MapSNPMeasurements: {}, govwire.MapSNPHostData: {}, govwire.MapVirtualMeasurements: {},
	}
	seen := map[uint64][]byte{}
	var out []quoteResult
	err := eachWriteSet(recs, func(r *log.Record, ws *log.WriteSet) error {
		for _, w := range ws.Writes {
			if m, ok := approved[w.Map]; ok {
				if w.Delete {
					delete(m, string(w.Key))
				} else {
					m[string(w.Key)] = true
				}
			}
		}
		for _, w := range ws.Writes {
			if w.Map != govwire.MapNodesInfo || w.Delete {
				continue
			}
			id, err := strconv.ParseUint(string(w.Key), 10, 64)
			if err != nil {
				continue
			}
			var nr join.NodeRecord
			if json.Unmarshal(w.Value, &nr) != nil || nr.QuoteInfo == nil || bytes.Equal(seen[id], nr.QuoteInfo.Evidence) {
				continue
			}
			seen[id] = nr.QuoteInfo.Evidence
			raw, err := log.MarshalRecord(r)
			if err != nil {
				return err
			}
			res := quoteResult{nodeID: id, txid: r.TxID(), rawRecord: raw, platform: nr.QuoteInfo.Format, evidence: nr.QuoteInfo.Evidence}
			res.measurement, res.err = verifyRecordedQuote(ctx, nr, approved, base)
			out = append(out, res)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func verifyRecordedQuote(ctx context.Context, nr join.NodeRecord, approved map[string]map[string]bool, base attest.Policy) (string, error) {
	ev, err := attest.UnmarshalEvidence(nr.QuoteInfo.Evidence)
	if err != nil {
		return "", err
	}
	key, err := parsePublicKeyPEM([]byte(nr.PublicKey))
	if err != nil {
		return "", fmt.Errorf("recorded node key: %w", err)
	}
	p, err := join.ApprovedPolicy(base, ev.Platform, func(m string, keep func(string)) error {
		for k := range approved[m] {
			keep(k)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	v, err := attest.Verify(ctx, ev, key, p)
	if err != nil {
		return "", err
	}
	m := hex.EncodeToString(v.Measurement)
	if m != nr.Measurement {
		return m, fmt.Errorf("the record says measurement %s, the evidence %s", nr.Measurement, m)
	}
	return m, nil
}

func parsePublicKeyPEM(b []byte) (crypto.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("no PUBLIC KEY PEM block")
	}
	return x509.ParsePKIXPublicKey(blk.Bytes)
}
