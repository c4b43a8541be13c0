package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/charterlog/charter/cose"
	gocose "github.com/veraison/go-cose"
)

func init() {
	register(command{
		name:    "receipt show",
		summary: "print the receipts of a transparent statement, or one receipt, readably",
		run:     runReceiptShow,
	})
}

// runReceiptShow prints a receipt (RECEIPT.cose) or a transparent statement
// and its receipts (TS.cose). It verifies nothing; use `charter verify`.
// It fails if the file is neither, or if a receipt cannot be parsed (after
// printing the rest).
func runReceiptShow(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("receipt show", "TS.cose|RECEIPT.cose", stderr)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("want one file, got %d arguments", len(pos))
	}
	b, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	if r, rerr := cose.ParseReceipt(b); rerr == nil {
		printReceipt(stdout, "receipt", r)
		return nil
	} else if !errors.Is(rerr, cose.ErrBadReceipt) {
		// A receipt by shape, but with something we do not support (vds).
		return fmt.Errorf("%s: %w", pos[0], rerr)
	}
	statement, receipts, err := cose.SplitTransparentStatement(b)
	if err != nil {
		return fmt.Errorf("%s is neither a receipt nor a transparent statement: %w", pos[0], err)
	}
	printStatement(stdout, statement)
	if len(receipts) == 0 {
		return fmt.Errorf("%s: the statement carries no receipts (header 394)", pos[0])
	}
	var bad int
	for i, rb := range receipts {
		name := fmt.Sprintf("receipt %d", i+1)
		r, err := cose.ParseReceipt(rb)
		if err != nil {
			fmt.Fprintf(stdout, "%s\n  cannot parse: %v\n", name, err)
			bad++
			continue
		}
		printReceipt(stdout, name, r)
	}
	if bad > 0 {
		return fmt.Errorf("%s: %d of %d receipts cannot be parsed", pos[0], bad, len(receipts))
	}
	return nil
}

func field(w io.Writer, name string, value any) {
	fmt.Fprintf(w, "  %-16s %v\n", name, value)
}

func printStatement(w io.Writer, statement []byte) {
	fmt.Fprintln(w, "statement")
	st, err := cose.ParseSign1(statement, cose.ParseOptions{MaxSize: len(statement)})
	if err != nil {
		field(w, "error", err)
		return
	}
	field(w, "alg", st.Alg)
	field(w, "issuer", st.CWT.Issuer)
	field(w, "subject", st.CWT.Subject)
	if st.CWT.IssuedAt != nil {
		field(w, "issued at", rfc3339(*st.CWT.IssuedAt))
	}
	if st.HashEnvelope != nil {
		if st.HashEnvelope.PreimageContentType != nil {
			field(w, "content type", st.HashEnvelope.PreimageContentType)
		}
		field(w, "hash envelope", fmt.Sprintf("payload is the %s digest of the artifact", hashAlgName(st.HashEnvelope.PayloadHashAlg)))
		if st.HashEnvelope.PayloadLocation != "" {
			field(w, "payload location", st.HashEnvelope.PayloadLocation)
		}
	} else if st.ContentType != nil {
		field(w, "content type", st.ContentType)
	}
	if st.Payload == nil {
		field(w, "payload", "detached")
	} else {
		field(w, "payload", fmt.Sprintf("%d bytes", len(st.Payload)))
	}
	if len(st.X5Chain) > 0 {
		field(w, "x5chain", fmt.Sprintf("%d certificates", len(st.X5Chain)))
	}
	if st.Kid != nil {
		field(w, "kid", printable(st.Kid))
	}
	e := st.LeafEntry()
	field(w, "leaf entry", hex.EncodeToString(e[:]))
}

func printReceipt(w io.Writer, name string, r *cose.Receipt) {
	fmt.Fprintln(w, name)
	field(w, "alg", r.Alg)
	if r.Kid != nil {
		field(w, "kid", printable(r.Kid))
	} else {
		field(w, "kid", "(none)")
	}
	switch r.VDS {
	case cose.VDSRFC9162:
		field(w, "vds", "1 (RFC9162_SHA256)")
	case cose.VDSCCF:
		field(w, "vds", "2 (CCF_LEDGER_SHA256)")
	}
	if r.Claims.Issuer != "" {
		field(w, "issuer", r.Claims.Issuer)
	}
	if r.Claims.Subject != "" {
		field(w, "subject", r.Claims.Subject)
	}
	if r.Claims.IssuedAt != 0 {
		field(w, "issued at", rfc3339(r.Claims.IssuedAt))
	}
	if r.VDS == cose.VDSRFC9162 {
		// The proofs' sizes below are unprotected; only this one is signed
		// (spec/formats.md, "Signed tree size").
		if r.Claims.TreeSize != 0 {
			field(w, "signed size", r.Claims.TreeSize)
		} else {
			field(w, "signed size", "none: the tree sizes and leaf indices below are not signed")
		}
	}
	if r.CCFTxID != "" {
		field(w, "ccf txid", r.CCFTxID+" (signature transaction)")
	}
	for i, p := range r.Inclusion {
		field(w, fmt.Sprintf("inclusion %d", i+1), fmt.Sprintf("tree size %d, leaf index %d", p.TreeSize, p.LeafIndex))
		printPath(w, p.Path)
	}
	for i, p := range r.Consistency {
		field(w, fmt.Sprintf("consistency %d", i+1), fmt.Sprintf("tree size %d to %d", p.Size1, p.Size2))
		printPath(w, p.Path)
	}
	for i, p := range r.CCF {
		detail := "commit evidence " + p.CommitEvidence
		if tx := p.TxID(); tx != "" {
			detail = "registered at " + tx + ", " + detail
		}
		field(w, fmt.Sprintf("ccf proof %d", i+1), detail)
		fmt.Fprintf(w, "    write set digest %x\n", p.WriteSetDigest)
		fmt.Fprintf(w, "    claims digest    %x\n", p.ClaimsDigest)
		fmt.Fprintf(w, "    root             %x\n", p.Root())
		for j, e := range p.Path {
			side := "right"
			if e.Left {
				side = "left "
			}
			fmt.Fprintf(w, "    path[%d] %s %x\n", j, side, e.Hash)
		}
	}
}

func printPath(w io.Writer, path [][]byte) {
	for j, h := range path {
		fmt.Fprintf(w, "    path[%d] %x\n", j, h)
	}
}

// hashAlgName names a COSE hash algorithm (RFC 9054), which go-cose does not.
func hashAlgName(a gocose.Algorithm) string {
	switch a {
	case cose.AlgorithmSHA256:
		return "SHA-256"
	case cose.AlgorithmSHA384:
		return "SHA-384"
	case cose.AlgorithmSHA512:
		return "SHA-512"
	}
	return fmt.Sprintf("hash algorithm %d", int64(a))
}

func rfc3339(sec int64) string {
	return time.Unix(sec, 0).UTC().Format(time.RFC3339)
}

// printable shows a kid as text when it is printable ASCII, else as hex.
func printable(b []byte) string {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return "h'" + hex.EncodeToString(b) + "'"
		}
	}
	return string(b)
}
