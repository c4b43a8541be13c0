package e2e

import (
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// appCall runs `charter app call` as the holder of keyPath/certPath (none
// if empty) and returns its status, transaction id and body.
func appCall(t *testing.T, c *cluster, via int, who *govMember, method, path, data string) (int, string, string) {
	t.Helper()
	args := []string{"app", "call", method, path, "--url", c.node(via).URL, "--cacert", c.certPath}
	if who != nil {
		args = append(args, "--user-key", who.KeyPath, "--user-cert", who.CertPath)
	}
	if data != "" {
		args = append(args, "--data", data)
	}
	out, _ := exec.Command(charterCLI, args...).Output() // stdout: status, id, body
	return parseAppCall(t, string(out))
}

var (
	statusLine = regexp.MustCompile(`(?m)^HTTP (\d{3})`)
	txLine     = regexp.MustCompile(`(?m)^x-ms-ccf-transaction-id: (\S+)`)
)

func parseAppCall(t *testing.T, out string) (int, string, string) {
	t.Helper()
	m := statusLine.FindStringSubmatch(out)
	if m == nil {
		return 0, "", out
	}
	var status int
	fmt.Sscan(m[1], &status)
	tx := ""
	if m := txLine.FindStringSubmatch(out); m != nil {
		tx = m[1]
	}
	body := out
	if i := strings.Index(out, "\n\n"); i >= 0 {
		body = strings.TrimSpace(out[i+2:])
	}
	return status, tx, body
}

// The Managed CCF banking walkthrough on a three-node network: three
// members activated, the bundle deployed by proposal and two ballots, two
// users added by proposals, accounts created, 100 deposited, 40
// transferred, balances 60 and 40; the transfer's receipt verifies offline
// and proves its claims digest; a user calling a member endpoint is
// refused; and kill -9 of the leader during a stream of transfers loses
// nothing.
func TestBankingWalkthroughCluster(t *testing.T) {
	dir := t.TempDir()
	m := []*govMember{newGovMember(t, dir, "member0", elliptic.P256()), newGovMember(t, dir, "member1", elliptic.P256()), newGovMember(t, dir, "member2", elliptic.P384())}
	c := startCluster(t, 3, clusterOpts{Members: []string{m[0].CertPath, m[1].CertPath, m[2].CertPath}})
	n1 := c.node(1).node
	for _, mem := range m {
		if out, err := govCLI(t, n1, mem, "ack"); err != nil {
			t.Fatalf("charter gov ack as %s: %v\n%s", mem.Name, err, out)
		}
	}
	memberFlags := func(mem *govMember) []string {
		return []string{"--url", n1.URL, "--cacert", c.certPath, "--member-key", mem.KeyPath, "--member-cert", mem.CertPath}
	}
	proposeAndSecond := func(what string, args ...string) {
		t.Helper()
		out, err := exec.Command(charterCLI, append(args, memberFlags(m[0])...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", what, err, out)
		}
		id := ""
		if mm := regexp.MustCompile(`proposal ([0-9a-f]{64})`).FindStringSubmatch(string(out)); mm != nil {
			id = mm[1]
		}
		if id == "" || !strings.Contains(string(out), "Open") {
			t.Fatalf("%s: want an Open proposal, got\n%s", what, out)
		}
		out, err = exec.Command(charterCLI, append([]string{"gov", "vote", id, "--accept"}, memberFlags(m[1])...)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"Accepted"`) {
			t.Fatalf("%s: member1's ballot: %v\n%s", what, err, out)
		}
	}
	proposeAndSecond("deploying the banking app", "app", "deploy", "--bundle", filepath.Join(repoRoot, "samples", "banking"))
	user0, user1 := newGovMember(t, dir, "user0", elliptic.P256()), newGovMember(t, dir, "user1", elliptic.P256())
	proposeAndSecond("adding user0", "user", "add", "--cert", user0.CertPath)
	proposeAndSecond("adding user1", "user", "add", "--cert", user1.CertPath)

	want := func(what string, status int, body string, gotStatus int, gotBody string) {
		t.Helper()
		if gotStatus != status || (body != "" && gotBody != body) {
			t.Fatalf("%s: %d %q, want %d %q", what, gotStatus, gotBody, status, body)
		}
	}
	s, _, b := appCall(t, c, 2, m[0], "PUT", "/account/"+user0.ID+"/current_account", "")
	want("creating user0's account via a follower", 204, "", s, b)
	s, _, b = appCall(t, c, 1, m[0], "PUT", "/account/"+user1.ID+"/savings_account", "")
	want("creating user1's account", 204, "", s, b)
	s, _, b = appCall(t, c, 3, m[0], "POST", "/deposit/"+user0.ID+"/current_account", `{"value":100}`)
	want("depositing 100", 204, "", s, b)
	s, tx, b := appCall(t, c, 1, user0, "POST", "/transfer/current_account", fmt.Sprintf(`{"value":40,"user_id_to":"%s","account_name_to":"savings_account"}`, user1.ID))
	want("transferring 40", 204, "", s, b)
	if tx == "" {
		t.Fatal("the transfer's response has no x-ms-ccf-transaction-id")
	}
	for i := 1; i <= 3; i++ {
		s, _, b = appCall(t, c, i, user0, "GET", "/balance/current_account", "")
		want(fmt.Sprintf("user0's balance on node %d", i), 200, `{"balance":60}`, s, b)
	}
	s, _, b = appCall(t, c, 2, user1, "GET", "/balance/savings_account", "")
	want("user1's balance", 200, `{"balance":40}`, s, b)

	// Bad input: a user on a member endpoint, an overdraft, a bad value.
	s, _, _ = appCall(t, c, 1, user0, "PUT", "/account/"+user0.ID+"/other", "")
	if s != 401 {
		t.Fatalf("a user calling a member endpoint: %d, want 401", s)
	}
	s, _, b = appCall(t, c, 1, user0, "POST", "/transfer/current_account", fmt.Sprintf(`{"value":1000,"user_id_to":"%s","account_name_to":"savings_account"}`, user1.ID))
	want("an overdraft", 400, "Balance is not enough", s, b)
	s, _, _ = appCall(t, c, 1, m[0], "POST", "/deposit/"+user0.ID+"/current_account", `{"value":-5}`)
	want("a negative deposit", 400, "", s, "")

	// The transfer's receipt verifies offline, and its record carries the
	// digest of the claim the app made.
	recPath, rcptPath, keysPath := filepath.Join(dir, "transfer.cbor"), filepath.Join(dir, "transfer.receipt"), filepath.Join(dir, "keys.cbor")
	eventually(t, 10*time.Second, "charter tx get "+tx, func() error {
		out, err := exec.Command(charterCLI, "tx", "get", tx, "--out-record", recPath, "--out-receipt", rcptPath, "--url", n1.URL, "--cacert", c.certPath).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	})
	if out, err := exec.Command(charterCLI, "keys", "--url", n1.URL, "--cacert", c.certPath, "--out", keysPath).CombinedOutput(); err != nil {
		t.Fatalf("charter keys: %v\n%s", err, out)
	}
	out, err := exec.Command(charterCLI, "tx", "verify", "--service-keys", keysPath, "--record", recPath, "--receipt", rcptPath).CombinedOutput()
	claim := fmt.Sprintf("%s sent 40 to %s", user0.ID, user1.ID)
	digest := sha256.Sum256([]byte(claim))
	if err != nil || !strings.Contains(string(out), "ok") || !strings.Contains(string(out), hex.EncodeToString(digest[:])) {
		t.Fatalf("charter tx verify of the transfer (want the claims digest %x of %q): %v\n%s", digest, claim, err, out)
	}
	// The app's own receipt endpoint (ccf.historical) answers for its owner.
	eventually(t, 10*time.Second, "GET /app/receipt", func() error {
		s, _, b = appCall(t, c, 1, user0, "GET", "/receipt?transaction_id="+tx, "")
		if s != 200 {
			return fmt.Errorf("%d %s", s, b)
		}
		return nil
	})
	var rcpt struct {
		LeafComponents struct{ Claim string } `json:"leaf_components"`
	}
	if s != 200 || json.Unmarshal([]byte(b), &rcpt) != nil || rcpt.LeafComponents.Claim != claim {
		t.Fatalf("GET /app/receipt: %d %s", s, b)
	}

	// Private maps are unreadable in the ledger: neither the account names
	// (keys, and part of the map names) nor the claim appear in the records.
	// (The names user_accounts and current_claim do: in the app's source,
	// which governance deployed in public.)
	r := n1.get(t, "/node/ledger/range?from=1&to=1000")
	if r.Status != 200 {
		t.Fatalf("GET /node/ledger/range: %d", r.Status)
	}
	for _, secret := range []string{"current_account", "savings_account", claim, "user_accounts:" + user0.ID} {
		if strings.Contains(string(r.Body), secret) {
			t.Errorf("the ledger holds %q in clear", secret)
		}
	}
	if !strings.Contains(string(r.Body), "private:") {
		t.Error("the ledger holds no private map at all")
	}

	// kill -9 of the leader during a stream of transfers of 1 loses
	// nothing: every transfer answered 204 is in the balances, and money is
	// neither made nor lost.
	var mu sync.Mutex
	ok, attempts := 0, 0
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(via int) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				st, _, _ := appCall(t, c, via, user0, "POST", "/transfer/current_account", fmt.Sprintf(`{"value":1,"user_id_to":"%s","account_name_to":"savings_account"}`, user1.ID))
				mu.Lock()
				attempts++
				if st == 204 {
					ok++
				}
				mu.Unlock()
			}
		}(w + 1)
	}
	succeeded := func() int {
		mu.Lock()
		defer mu.Unlock()
		return ok
	}
	waitUntil(t, 30*time.Second, "a transfer succeeds before the kill", func() bool { return succeeded() > 0 })
	leader, _ := c.leader()
	c.kill9(leader)
	// The transfers go on until they succeed again: through a new leader.
	atKill := succeeded()
	waitUntil(t, 30*time.Second, "a transfer succeeds after the kill", func() bool { return succeeded() > atKill })
	close(stop)
	wg.Wait()
	c.restart(leader)
	c.node(leader).waitHealthy(30 * time.Second)
	var bal0, bal1 struct{ Balance int }
	other := leader%3 + 1
	_, _, b0 := appCall(t, c, other, user0, "GET", "/balance/current_account", "")
	_, _, b1 := appCall(t, c, other, user1, "GET", "/balance/savings_account", "")
	if json.Unmarshal([]byte(b0), &bal0) != nil || json.Unmarshal([]byte(b1), &bal1) != nil {
		t.Fatalf("balances after the kill: %q %q", b0, b1)
	}
	moved := bal1.Balance - 40
	t.Logf("transfers during the kill: %d attempted, %d answered 204, %d applied", attempts, ok, moved)
	if bal0.Balance+bal1.Balance != 100 || moved < ok || moved > attempts {
		t.Fatalf("after kill -9 of the leader: balances %d + %d (want a total of 100), %d transfers applied, %d acknowledged, %d attempted",
			bal0.Balance, bal1.Balance, moved, ok, attempts)
	}
	if ok == 0 {
		t.Fatal("no transfer succeeded around the leader's kill")
	}
}
