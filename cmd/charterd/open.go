package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/charterlog/charter/internal/govwire"
)

// openCluster opens a cluster's service, as member0 (the only member,
// active from genesis): it proposes transition_service_to_open and votes
// for it, unless the service is open already (a reopened cluster). It is
// what a consortium does by hand with `charter gov propose` and `vote`.
func openCluster(ctx context.Context, dir, url string) error {
	certPEM, err := os.ReadFile(filepath.Join(dir, "service_cert.pem"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		return errors.New("service_cert.pem holds no certificate")
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	var network struct {
		Status string `json:"service_status"`
	}
	if err := getJSON(ctx, client, url+"/node/network", &network); err != nil {
		return err
	}
	if network.Status == govwire.ServiceOpen {
		return nil
	}
	signer, cert, err := loadMember0(dir)
	if err != nil {
		return err
	}
	payload, err := json.Marshal(govwire.Proposal{Actions: []govwire.Action{{Name: "transition_service_to_open", Args: json.RawMessage("{}")}}})
	if err != nil {
		return err
	}
	var created struct {
		ProposalID string `json:"proposalId"`
	}
	if err := postGov(ctx, client, url+"/gov/members/proposals:create?api-version="+govAPIVersion, signer, cert, govwire.MsgProposal, "", payload, &created); err != nil {
		return fmt.Errorf("proposing to open the service: %w", err)
	}
	ballot, _ := json.Marshal(govwire.Ballot{Ballot: "export function vote(proposal, proposerId) { return true }"})
	var voted struct {
		State string `json:"proposalState"`
	}
	path := url + "/gov/members/proposals/" + created.ProposalID + "/ballots/" + govwire.MemberIDOf(cert) + ":submit?api-version=" + govAPIVersion
	if err := postGov(ctx, client, path, signer, cert, govwire.MsgBallot, created.ProposalID, ballot, &voted); err != nil {
		return fmt.Errorf("voting to open the service: %w", err)
	}
	if voted.State != "Accepted" {
		return fmt.Errorf("the proposal to open the service is %s, not Accepted", voted.State)
	}
	return nil
}

func loadMember0(dir string) (crypto.Signer, *x509.Certificate, error) {
	kb, err := os.ReadFile(filepath.Join(dir, "member0_privk.pem"))
	if err != nil {
		return nil, nil, err
	}
	blk, _ := pem.Decode(kb)
	if blk == nil {
		return nil, nil, errors.New("member0_privk.pem: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("member0_privk.pem: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New("member0_privk.pem: not a signing key")
	}
	cb, err := os.ReadFile(filepath.Join(dir, "member0_cert.pem"))
	if err != nil {
		return nil, nil, err
	}
	cblk, _ := pem.Decode(cb)
	if cblk == nil {
		return nil, nil, errors.New("member0_cert.pem: no PEM block")
	}
	cert, err := x509.ParseCertificate(cblk.Bytes)
	return signer, cert, err
}

func getJSON(ctx context.Context, client *http.Client, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	return doJSON(client, req, out)
}

// govAPIVersion is the version of CCF's governance API the requests
// above name (spec/governance.md).
const govAPIVersion = "2024-07-01"

func postGov(ctx context.Context, client *http.Client, url string, signer crypto.Signer, cert *x509.Certificate, t govwire.MsgType, proposalID string, payload []byte, out any) error {
	body, err := govwire.SignRequest(rand.Reader, signer, cert, t, time.Now(), proposalID, payload)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/cose")
	return doJSON(client, req, out)
}

func doJSON(client *http.Client, req *http.Request, out any) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	return json.Unmarshal(b, out)
}
