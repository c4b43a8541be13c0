package main

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/charterlog/charter/internal/durable"
	"github.com/charterlog/charter/internal/recovery"
)

func init() {
	register(command{name: "gov recovery-share", summary: "fetch this member's recovery share, decrypt it and check it against the ledger's commitment", run: runGovRecoveryShare})
}

// maxEncryptionKeyFile bounds the --encryption-key file read.
const maxEncryptionKeyFile = 64 << 10

// readEncryptionKey reads a recovery member's RSA private key: PEM,
// PKCS #1 ("RSA PRIVATE KEY") or PKCS #8 ("PRIVATE KEY").
func readEncryptionKey(file string) (*rsa.PrivateKey, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("--encryption-key: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxEncryptionKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("--encryption-key: %w", err)
	}
	if len(b) > maxEncryptionKeyFile {
		return nil, fmt.Errorf("--encryption-key %s is larger than %d bytes: not a key", file, maxEncryptionKeyFile)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("--encryption-key %s holds no PEM block", file)
	}
	switch blk.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("--encryption-key: %w", err)
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("--encryption-key: %w", err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("--encryption-key: a %T, want an RSA private key", k)
		}
		return rk, nil
	}
	return nil, fmt.Errorf("--encryption-key: a %q PEM block, want RSA PRIVATE KEY or PRIVATE KEY", blk.Type)
}

// recoverySharing is GET /gov/recovery/sharing's answer.
type recoverySharing struct {
	Threshold           int      `json:"threshold"`
	Commitment          []byte   `json:"commitment"`
	Members             []string `json:"members"`
	LedgerSecretVersion uint64   `json:"ledgerSecretVersion"`
	Basis               string   `json:"basis"`
}

func (c *govClient) getJSON(ctx context.Context, path string, v any) error {
	raw, err := c.raw(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("GET %s: answer is not the expected JSON: %w", path, err)
	}
	return nil
}

// fetchShare reads the sharing, the member's encrypted share and the
// sharing again, so that share and commitment belong together: the primary
// may re-share between two reads (the basis then differs, and it tries
// again).
func (c *govClient) fetchShare(ctx context.Context) (*recoverySharing, []byte, error) {
	for range 3 {
		var before, after recoverySharing
		if err := c.getJSON(ctx, "/gov/recovery/sharing", &before); err != nil {
			return nil, nil, fmt.Errorf("the commitment the share is checked against cannot be read: %w", err)
		}
		var share struct {
			MemberID       string `json:"memberId"`
			EncryptedShare []byte `json:"encryptedShare"`
		}
		if err := c.getJSON(ctx, "/gov/recovery/encrypted-shares/"+c.id, &share); err != nil {
			return nil, nil, err
		}
		if err := c.getJSON(ctx, "/gov/recovery/sharing", &after); err != nil {
			return nil, nil, fmt.Errorf("the commitment the share is checked against cannot be read: %w", err)
		}
		if before.Basis == after.Basis {
			return &after, share.EncryptedShare, nil
		}
	}
	return nil, nil, errors.New("the recovery sharing changed while it was read, three times; try again")
}

func runGovRecoveryShare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gov recovery-share", "--url URL --cacert PEM --member-key KEY --member-cert CERT --encryption-key RSA-KEY [--out FILE]", stderr)
	var g govFlags
	g.add(fs, true)
	encKey := fs.String("encryption-key", "", "the member's RSA private encryption key (PEM, PKCS #1 or PKCS #8)")
	out := fs.String("out", "", "write the decrypted share (64 bytes) to FILE, mode 0600, instead of printing it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *encKey == "" {
		return usageError("--encryption-key is required")
	}
	priv, err := readEncryptionKey(*encKey)
	if err != nil {
		return err
	}
	c, err := g.client(true)
	if err != nil {
		return err
	}
	sharing, encrypted, err := c.fetchShare(ctx)
	if err != nil {
		return err
	}
	share, err := recovery.DecryptShare(priv, encrypted)
	if err != nil {
		return fmt.Errorf("member %s: %w (is --encryption-key the key set for this member?)", c.id, err)
	}
	if err := (&recovery.Sharing{Threshold: sharing.Threshold, Commitment: sharing.Commitment}).Verify(share); err != nil {
		return fmt.Errorf("member %s: the decrypted share does not verify against the ledger's commitment: %w", c.id, err)
	}
	result := map[string]any{
		"memberId": c.id, "verified": true, "threshold": sharing.Threshold,
		"ledgerSecretVersion": sharing.LedgerSecretVersion, "basis": sharing.Basis,
	}
	if *out != "" {
		if err := durable.WriteFile(*out, share, 0o600); err != nil {
			return err
		}
		result["out"] = *out
	} else {
		result["share"] = base64.StdEncoding.EncodeToString(share)
	}
	printJSON(stdout, result)
	return nil
}
