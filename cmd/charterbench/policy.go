package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/charterlog/charter/client"
	"github.com/charterlog/charter/internal/govwire"
)

// member is a governance member identity read from PEM files: the network
// a bench run starts writes its Active member0 as
// DATA/member0_{privk,cert}.pem (dev node and cluster alike).
type member struct {
	signer crypto.Signer
	cert   *x509.Certificate
	id     string
}

func loadMember(dataDir string) (*member, error) {
	kb, err := os.ReadFile(filepath.Join(dataDir, "member0_privk.pem"))
	if err != nil {
		return nil, fmt.Errorf("member key: %w", err)
	}
	blk, _ := pem.Decode(kb)
	if blk == nil {
		return nil, fmt.Errorf("member key: no PEM block in %s", filepath.Join(dataDir, "member0_privk.pem"))
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		ek, err2 := x509.ParseECPrivateKey(blk.Bytes)
		if err2 != nil {
			return nil, fmt.Errorf("member key: %w", err)
		}
		k = ek
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("member key: a %T cannot sign", k)
	}
	cb, err := os.ReadFile(filepath.Join(dataDir, "member0_cert.pem"))
	if err != nil {
		return nil, fmt.Errorf("member certificate: %w", err)
	}
	cblk, _ := pem.Decode(cb)
	if cblk == nil {
		return nil, fmt.Errorf("member certificate: no PEM block in %s", filepath.Join(dataDir, "member0_cert.pem"))
	}
	cert, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("member certificate: %w", err)
	}
	return &member{signer: signer, cert: cert, id: govwire.MemberIDOf(cert)}, nil
}

// acceptBallot is the ballot `charter gov vote --accept` sends.
const acceptBallot = "export function vote(proposal, proposerId) { return true }"

// setPolicy proposes set_registration_policy {policy: src} as m at base and
// votes for it; with one Active member (a network this run started) that
// accepts it. It fails unless governance says Accepted. It returns the
// policy's version (SHA-256 of src), which registrations record.
func setPolicy(ctx context.Context, c *http.Client, base *url.URL, m *member, src string) ([32]byte, error) {
	args, err := json.Marshal(map[string]string{"policy": src})
	if err != nil {
		return [32]byte{}, err
	}
	if err := propose(ctx, c, base, m, "the policy", govwire.Action{Name: "set_registration_policy", Args: args}); err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256([]byte(src)), nil
}

// propose proposes actions as m at base and votes for them; with one
// Active member (a network this run started) that accepts them. It fails
// unless governance says Accepted; what names the proposal in errors.
func propose(ctx context.Context, c *http.Client, base *url.URL, m *member, what string, actions ...govwire.Action) error {
	payload, err := json.Marshal(govwire.Proposal{Actions: actions})
	if err != nil {
		return err
	}
	p, err := govSend(ctx, c, base.JoinPath("gov", "members", "proposals:create"), m, govwire.MsgProposal, "", payload)
	if err != nil {
		return fmt.Errorf("proposing %s: %w", what, err)
	}
	if p.ProposalID == "" {
		return fmt.Errorf("proposing %s: the answer names no proposal (state %q)", what, p.State)
	}
	if p.State != "Accepted" {
		ballot, _ := json.Marshal(govwire.Ballot{Ballot: acceptBallot})
		p, err = govSend(ctx, c, base.JoinPath("gov", "members", "proposals", p.ProposalID, "ballots", m.id+":submit"), m, govwire.MsgBallot, p.ProposalID, ballot)
		if err != nil {
			return fmt.Errorf("voting for %s: %w", what, err)
		}
	}
	if p.State != "Accepted" {
		return fmt.Errorf("the proposal of %s (%s) is %q after member0's vote, not Accepted", what, p.ProposalID, p.State)
	}
	return nil
}

// proposalState is the part of governance's proposal answer the bench reads.
type proposalState struct {
	ProposalID string `json:"proposalId"`
	State      string `json:"proposalState"`
}

// govSend signs payload as a governance request of type t and POSTs it.
func govSend(ctx context.Context, c *http.Client, u *url.URL, m *member, t govwire.MsgType, proposalID string, payload []byte) (proposalState, error) {
	var out proposalState
	body, err := govwire.SignRequest(rand.Reader, m.signer, m.cert, t, time.Now(), proposalID, payload)
	if err != nil {
		return out, err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// CCF 7's governance API names its version (spec/governance.md).
	u = u.JoinPath()
	u.RawQuery = "api-version=2024-07-01"
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/cose")
	resp, err := c.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return out, err
	}
	if resp.StatusCode/100 != 2 {
		if title, detail, ok := client.ParseProblem(b); ok && title != "" {
			return out, fmt.Errorf("%s: %s (HTTP %d)", title, detail, resp.StatusCode)
		}
		return out, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("the answer is not governance JSON: %w", err)
	}
	return out, nil
}
