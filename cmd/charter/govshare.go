package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/charterlog/charter/internal/govwire"
)

func init() {
	register(command{name: "gov submit-share", summary: "submit one's decrypted recovery share to a recovered service waiting for shares", run: runGovSubmitShare})
}

// maxShareFile bounds the share file read: a share is 64 bytes, in base64
// at most a line.
const maxShareFile = 4 << 10

// runGovSubmitShare sends a recovery member's decrypted share (a file of
// the 64 bytes, or of their base64 as `charter gov recovery-share`
// prints it) in a signed recovery_share request to POST
// /gov/recovery/members/{member_id}:recover, and prints the answer.
func runGovSubmitShare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("gov submit-share", "--url URL --cacert PEM --member-key KEY --member-cert CERT --share FILE", stderr)
	var g govFlags
	g.add(fs, true)
	sharePath := fs.String("share", "", "the decrypted share: 64 bytes, or their base64 (- for stdin)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *sharePath == "" {
		return usageError("--share is required")
	}
	c, err := g.client(true)
	if err != nil {
		return err
	}
	var r io.Reader = os.Stdin
	if *sharePath != "-" {
		f, err := os.Open(*sharePath)
		if err != nil {
			return fmt.Errorf("--share: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxShareFile+1))
	if err != nil {
		return fmt.Errorf("--share: %w", err)
	}
	if len(b) > maxShareFile {
		return fmt.Errorf("--share: over %d bytes: not a share", maxShareFile)
	}
	share := b
	if len(b) != 64 {
		if share, err = base64.StdEncoding.DecodeString(string(bytes.TrimSpace(b))); err != nil || len(share) != 64 {
			return fmt.Errorf("--share %s holds neither the 64-byte share nor its base64", *sharePath)
		}
	}
	payload, err := json.Marshal(map[string]string{"share": base64.StdEncoding.EncodeToString(share)})
	if err != nil {
		return err
	}
	return c.sendAndPrint(ctx, stdout, "/gov/recovery/members/"+c.id+":recover", govwire.MsgRecoveryShare, "", payload)
}
