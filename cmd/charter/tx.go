package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/charterlog/charter/client"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/log"
)

func init() {
	register(command{name: "tx get", summary: "download a transaction's record and receipt", run: runTxGet})
	register(command{name: "tx verify", summary: "check offline that a transaction record is in the ledger", run: runTxVerify})
}

func runTxGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tx get", "--url URL --cacert PEM --out-record R.cbor --out-receipt R.cose VIEW.SEQNO", stderr)
	var g govFlags
	g.add(fs, false)
	outRec := fs.String("out-record", "", "where to write the record (CBOR)")
	outRcpt := fs.String("out-receipt", "", "where to write the receipt (COSE)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *outRec == "" || *outRcpt == "" {
		return usageError("want --out-record, --out-receipt and one transaction id")
	}
	if _, err := log.ParseTxID(pos[0]); err != nil {
		return usageError("%q: %v", pos[0], err)
	}
	c, err := g.client(false)
	if err != nil {
		return err
	}
	q := "?transaction_id=" + url.QueryEscape(pos[0])
	rec, err := c.raw(ctx, http.MethodGet, "/node/ledger/tx"+q, nil)
	if err != nil {
		return fmt.Errorf("fetching the record: %w", err)
	}
	rcpt, err := c.raw(ctx, http.MethodGet, "/node/receipt"+q, nil)
	if err != nil {
		return fmt.Errorf("fetching the receipt: %w", err)
	}
	if err := os.WriteFile(*outRec, rec, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(*outRcpt, rcpt, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s\n", *outRec, *outRcpt)
	return nil
}

func runTxVerify(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tx verify", "--service-keys KEYS.cbor --record R.cbor --receipt R.cose", stderr)
	keysPath := fs.String("service-keys", "", "the service's keys (COSE_KeySet, JWKS or PEM)")
	recPath := fs.String("record", "", "the transaction record (from charter tx get)")
	rcptPath := fs.String("receipt", "", "its receipt")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *keysPath == "" || *recPath == "" || *rcptPath == "" {
		return usageError("--service-keys, --record and --receipt are required")
	}
	kb, err := os.ReadFile(*keysPath)
	if err != nil {
		return err
	}
	keys, err := client.ParseServiceKeys(kb)
	if err != nil {
		return fmt.Errorf("--service-keys: %w", err)
	}
	rec, err := os.ReadFile(*recPath)
	if err != nil {
		return err
	}
	rcpt, err := os.ReadFile(*rcptPath)
	if err != nil {
		return err
	}
	rep, err := client.VerifyTransaction(rec, rcpt, keys)
	if err != nil {
		return fmt.Errorf("FAIL: %w", err)
	}
	position := ""
	if !rep.Receipt.SizeBound {
		// The receipt does not sign its tree size, so the leaf index is
		// the proof's word, not the service's.
		position = " " + client.NotSignedByService
	}
	fmt.Fprintf(stdout, "ok   transaction %s (%s) is leaf %d of the tree of size %d%s, signed by %s\n",
		rep.Record.TxID(), rep.Record.Type, rep.Receipt.LeafIndex, rep.Receipt.TreeSize, position, rep.Receipt.Claims.Issuer)
	if a := rep.App; a != nil {
		if len(a.ClaimsDigest) > 0 {
			fmt.Fprintf(stdout, "     claims digest %x (SHA-256 of the app's claim, bound into the leaf)\n", a.ClaimsDigest)
		}
		for _, w := range a.Writes {
			what := "set   "
			if w.Delete {
				what = "delete"
			}
			fmt.Fprintf(stdout, "     %s %s (%d-byte key, %d-byte value; private maps are encrypted)\n", what, w.Map, len(w.Key), len(w.Value))
		}
	}
	if ws := rep.WriteSet; ws != nil {
		if r, err := govwire.ParseRequest(ws.Claims); err == nil {
			fmt.Fprintf(stdout, "     signed %s request by member %s\n", r.Type, r.MemberID)
		} else if t, member, how, ok := govwire.DescribeClaims(ws.Claims); ok {
			fmt.Fprintf(stdout, "     %s request by member %s (%s)\n", t, member, how)
		} else if len(ws.Claims) > 0 && len(ws.Claims) < 64 {
			fmt.Fprintf(stdout, "     claims: %s\n", strings.TrimSpace(string(ws.Claims)))
		}
		for _, w := range ws.Writes {
			if w.Delete {
				fmt.Fprintf(stdout, "     delete %s[%s]\n", w.Map, w.Key)
			} else {
				fmt.Fprintf(stdout, "     set    %s[%s] (%d bytes)\n", w.Map, w.Key, len(w.Value))
			}
		}
	}
	return nil
}
