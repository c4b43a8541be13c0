package e2e

// The trust boundary (spec/security.md): an outsider on the network, a
// node that joined but is not trusted, and a retired node cannot change the
// ledger; joins cost the joiner; a data directory without a network is
// never silently made into one. Each attack here worked before the
// boundary existed (issue 14).

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/attest"
	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/joinclient"
	charternode "github.com/charterlog/charter/internal/node"
	"github.com/charterlog/charter/internal/peer"
	"github.com/charterlog/charter/internal/replication"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// attacker is a party on the network with its own key: no credentials but
// what it can make or obtain by joining.
type attacker struct {
	t    *testing.T
	key  *ecdsa.PrivateKey
	cert tls.Certificate // its TLS client certificate (self-made, or from joining)
	id   uint64          // the node id the network gave it, if it joined
	url  string
}

func newAttacker(t *testing.T) *attacker {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// A self-made certificate that claims to be node 1.
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Charter node 1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	port := freeLoopbackPorts(t, 1)[0]
	return &attacker{t: t, key: k, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, url: "https://127.0.0.1:" + strconv.Itoa(port)}
}

// charterdMeasurement is what a virtual node running charterd reports:
// anyone can compute it from the public binary.
func charterdMeasurement(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(charterd)
	if err != nil {
		t.Fatal(err)
	}
	h := sha512.Sum384(b)
	return h[:]
}

// join sends POST /node/join with self-made virtual evidence for the
// attacker's key, and keeps the node certificate an admitted join returns.
func (a *attacker) join(n *node) *response {
	a.t.Helper()
	ev, err := attest.NewVirtualProvider(charterdMeasurement(a.t), nil).Evidence(context.Background(), &a.key.PublicKey)
	if err != nil {
		a.t.Fatal(err)
	}
	body, err := joinclient.RequestBody(a.url, a.key, ev)
	if err != nil {
		a.t.Fatal(err)
	}
	// A flood's joins queue behind each other's admissions (a raft
	// configuration change each): what is tested is the answers, not how
	// soon they come on a loaded machine.
	r, err := n.doWithin(time.Minute, http.MethodPost, "/node/join", "application/json", body)
	if err != nil {
		a.t.Fatal(err)
	}
	if r.Status == http.StatusOK {
		var jr struct {
			NodeID   uint64 `json:"node_id"`
			NodeCert string `json:"node_certificate"`
		}
		if err := json.Unmarshal(r.Body, &jr); err != nil {
			a.t.Fatal(err)
		}
		blk, _ := pem.Decode([]byte(jr.NodeCert))
		if blk == nil {
			a.t.Fatalf("join answer without a node certificate: %s", r.Body)
		}
		a.id = jr.NodeID
		a.cert = tls.Certificate{Certificate: [][]byte{blk.Bytes}, PrivateKey: a.key}
	}
	return r
}

// client is an HTTPS client that presents the attacker's certificate and
// trusts the service certificate (it wants to reach the real node).
func (a *attacker) client(n *node) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(mustRead(a.t, n.CertPath))
	cert := a.cert
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}
	a.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}

// raft sends msgs to the node's /node/raft as the attacker.
func (a *attacker) raft(n *node, msgs ...*pb.Message) (int, string) {
	a.t.Helper()
	body, err := replication.EncodeMessages(msgs)
	if err != nil {
		a.t.Fatal(err)
	}
	resp, err := a.client(n).Post(n.URL+peer.PathRaft, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// snapshotBase asks the node, as the attacker, which ledger prefix it
// holds (only a voter may).
func (a *attacker) snapshotBase(n *node) int {
	a.t.Helper()
	resp, err := a.client(n).Get(n.URL + peer.PathSnapshotBase)
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// history asks the node, as the attacker, for a range of its history
// (only a trusted node may).
func (a *attacker) history(n *node) int {
	a.t.Helper()
	resp, err := a.client(n).Get(n.URL + peer.PathHistory + "?floor=2&from=0&level=1")
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// snapshot sends a MsgSnap header and a body to /node/raft/snapshot.
func (a *attacker) snapshot(n *node, m *pb.Message) int {
	a.t.Helper()
	hdr, err := proto.Marshal(m)
	if err != nil {
		a.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, n.URL+peer.PathSnapshot, strings.NewReader(strings.Repeat("x", 4096)))
	req.Header.Set("Charter-Raft-Message", base64.StdEncoding.EncodeToString(hdr))
	resp, err := a.client(n).Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

type raftView struct {
	Term   uint64 `json:"term"`
	Leader uint64 `json:"leader"`
	State  string `json:"state"`
	Commit uint64 `json:"commit_index"`
}

func consensusOf(t *testing.T, n *node) raftView {
	t.Helper()
	var v raftView
	if err := json.Unmarshal(n.get(t, "/node/consensus").Body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// forgeries are the raft messages that move the log or leadership, each
// claiming to come from `from` with a term far ahead of the node's.
func forgeries(from, term uint64) map[string]*pb.Message {
	u := proto.Uint64
	m := func(t pb.MessageType) *pb.Message {
		return &pb.Message{Type: t.Enum(), From: u(from), To: u(1), Term: u(term), LogTerm: u(term), Index: u(1<<20 - 1), Commit: u(1 << 20)}
	}
	app := m(pb.MsgApp)
	app.Entries = []*pb.Entry{{Term: u(term), Index: u(1 << 20), Type: pb.EntryNormal.Enum(), Data: []byte("forged")}}
	return map[string]*pb.Message{
		"MsgApp": app, "MsgHeartbeat": m(pb.MsgHeartbeat), "MsgVote": m(pb.MsgVote),
		"MsgPreVote": m(pb.MsgPreVote), "MsgTimeoutNow": m(pb.MsgTimeoutNow),
	}
}

// snapshotMsg is a MsgSnap header from `from`.
func snapshotMsg(from, term uint64) *pb.Message {
	u := proto.Uint64
	return &pb.Message{Type: pb.MsgSnap.Enum(), From: u(from), To: u(1), Term: u(term),
		Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: u(1 << 20), Term: u(term), ConfState: &pb.ConfState{Voters: []uint64{from}}}}}
}

// appResp is the acknowledgement a learner sends.
func appResp(from, term uint64) *pb.Message {
	return &pb.Message{Type: pb.MsgAppResp.Enum(), From: proto.Uint64(from), To: proto.Uint64(1), Term: proto.Uint64(term), Index: proto.Uint64(0)}
}

func TestTrustBoundary(t *testing.T) {
	n := startNode(t, t.TempDir())
	before := consensusOf(t, n)
	if before.State != "StateLeader" {
		t.Fatalf("the dev node is %s", before.State)
	}
	future := before.Term + 100

	t.Run("outsider", func(t *testing.T) {
		a := newAttacker(t)
		for name, m := range forgeries(2, future) {
			if code, body := a.raft(n, m); code != http.StatusForbidden {
				t.Errorf("an outsider's forged %s claiming node 2: %d %s, want 403", name, code, body)
			}
		}
		// Claiming the node's own leader id changes nothing.
		if code, _ := a.raft(n, forgeries(1, future)["MsgApp"]); code != http.StatusForbidden {
			t.Errorf("an outsider's MsgApp as node 1: %d, want 403", code)
		}
		if code := a.snapshot(n, snapshotMsg(2, future)); code != http.StatusForbidden {
			t.Errorf("an outsider's snapshot: %d, want 403", code)
		}
		if code := a.snapshotBase(n); code != http.StatusForbidden {
			t.Errorf("an outsider's GET %s: %d, want 403", peer.PathSnapshotBase, code)
		}
		if code := a.history(n); code != http.StatusForbidden {
			t.Errorf("an outsider's GET %s: %d, want 403", peer.PathHistory, code)
		}
		// No certificate at all.
		body, _ := replication.EncodeMessages([]*pb.Message{forgeries(2, future)["MsgApp"]})
		if r, err := n.do(http.MethodPost, peer.PathRaft, "application/octet-stream", body); err != nil || r.Status != http.StatusForbidden {
			t.Errorf("raft without a certificate: %v %v, want 403", r, err)
		}
	})

	pending := newAttacker(t)
	t.Run("pending node", func(t *testing.T) {
		r := pending.join(n)
		if r.Status != http.StatusOK {
			t.Fatalf("join with virtual evidence of charterd: %d %s", r.Status, r.Body)
		}
		var jr struct {
			Status string `json:"status"`
			Sealed []byte `json:"sealed_secrets"`
		}
		_ = json.Unmarshal(r.Body, &jr)
		if jr.Status != "Pending" || len(jr.Sealed) > 0 {
			t.Fatalf("a node that joined the open dev network is %q with %d bytes of secrets", jr.Status, len(jr.Sealed))
		}
		leaf, err := x509.ParseCertificate(pending.cert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if len(leaf.IPAddresses)+len(leaf.DNSNames) > 0 {
			t.Errorf("an untrusted node's certificate names hosts: %v %v", leaf.IPAddresses, leaf.DNSNames)
		}
		for _, u := range leaf.ExtKeyUsage {
			if u == x509.ExtKeyUsageServerAuth {
				t.Error("an untrusted node's certificate allows server authentication")
			}
		}
		for name, m := range forgeries(pending.id, future) {
			if code, body := pending.raft(n, m); code != http.StatusForbidden {
				t.Errorf("a pending node's %s: %d %s, want 403", name, code, body)
			}
		}
		// Nor may it speak for another node.
		if code, _ := pending.raft(n, appResp(pending.id+100, before.Term)); code != http.StatusForbidden {
			t.Errorf("a pending node's MsgAppResp as node %d: %d, want 403", pending.id+100, code)
		}
		if code := pending.snapshot(n, snapshotMsg(pending.id, future)); code != http.StatusForbidden {
			t.Errorf("a pending node's snapshot: %d, want 403", code)
		}
		// Only a node that may lead asks which ledger prefix this one holds.
		if code := pending.snapshotBase(n); code != http.StatusForbidden {
			t.Errorf("a pending node's GET %s: %d, want 403", peer.PathSnapshotBase, code)
		}
		// Nor its history, until governance trusts it.
		if code := pending.history(n); code != http.StatusForbidden {
			t.Errorf("a pending node's GET %s: %d, want 403", peer.PathHistory, code)
		}
		// What a learner must say, it may: an acknowledgement of its own.
		ack := appResp(pending.id, before.Term)
		if code, body := pending.raft(n, ack); code != http.StatusNoContent {
			t.Errorf("a pending node's own MsgAppResp: %d %s, want 204", code, body)
		}
	})

	t.Run("pending certificate as a server", func(t *testing.T) {
		if pending.id == 0 {
			t.Skip("the pending node did not join")
		}
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{
			Certificate: append(pending.cert.Certificate, mustCertDER(t, n.CertPath)), PrivateKey: pending.key}}})
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
			}
		}()
		_, err = n.Client.Get("https://" + ln.Addr().String() + "/node/health")
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("a client pinning the service certificate accepted a pending node's certificate as a server: %v", err)
		}
	})

	after := consensusOf(t, n)
	if after.Term != before.Term || after.State != "StateLeader" {
		t.Fatalf("the forgeries moved raft: before %+v, after %+v", before, after)
	}
	// The ledger holds no forged entry: it still commits and registers.
	n.mustRegister(t, newPublisher(t, "after forgeries").unique(t))

	t.Run("retired node", func(t *testing.T) {
		if pending.id == 0 {
			t.Skip("the pending node did not join")
		}
		devGovAccept(t, n, "remove_node", map[string]string{"node_id": strconv.FormatUint(pending.id, 10)})
		ack := appResp(pending.id, before.Term)
		n.waitFor(t, "the retired node's key refused", func() bool {
			code, _ := pending.raft(n, ack)
			return code == http.StatusForbidden
		})
		if code, _ := pending.raft(n, forgeries(pending.id, future)["MsgApp"]); code != http.StatusForbidden {
			t.Errorf("a retired node's MsgApp: %d, want 403", code)
		}
	})

	t.Run("join flood", func(t *testing.T) {
		var (
			mu     sync.Mutex
			codes  = map[int]int{}
			retry  = 0
			wg     sync.WaitGroup
			joined []*attacker
		)
		for range 20 {
			a := newAttacker(t)
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := a.join(n)
				mu.Lock()
				defer mu.Unlock()
				codes[r.Status]++
				if r.Status == http.StatusTooManyRequests && r.Header.Get("Retry-After") != "" {
					retry++
				}
				if r.Status == http.StatusOK {
					joined = append(joined, a)
				}
			}()
		}
		wg.Wait()
		if codes[http.StatusTooManyRequests] == 0 || retry != codes[http.StatusTooManyRequests] {
			t.Errorf("20 joins at once: answers %v, %d with Retry-After; want 429s with Retry-After", codes, retry)
		}
		if codes[http.StatusOK] > charternode.DefaultMaxPendingNodes {
			t.Errorf("20 joins at once admitted %d nodes, more than the %d pending allowed", codes[http.StatusOK], charternode.DefaultMaxPendingNodes)
		}
		var nodes struct{ Nodes []nodeRecord }
		if err := json.Unmarshal(n.get(t, "/node/network/nodes").Body, &nodes); err != nil {
			t.Fatal(err)
		}
		learners := 0
		for _, x := range nodes.Nodes {
			if x.Role == "learner" {
				learners++
			}
		}
		if learners > charternode.DefaultMaxPendingNodes {
			t.Errorf("%d learners after the flood, more than %d", learners, charternode.DefaultMaxPendingNodes)
		}
		// An admitted flooder is still only a pending node.
		for _, a := range joined {
			if code, _ := a.raft(n, forgeries(a.id, future)["MsgApp"]); code != http.StatusForbidden {
				t.Errorf("flooder %d's MsgApp: %d, want 403", a.id, code)
			}
		}
	})
}

func mustCertDER(t *testing.T, path string) []byte {
	t.Helper()
	blk, _ := pem.Decode(mustRead(t, path))
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	return blk.Bytes
}

// Only `charterd create` makes a network; start refuses a directory that
// holds none (a mistyped path), create refuses one that does, and a
// network that is not a development network refuses virtual nodes until
// members approve their measurement.
func TestCreateIsDeliberate(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfg := config.Config{DataDir: dataDir, Addr: "127.0.0.1:0", LogLevel: "info"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "node.json")
	if err := config.Write(cfgPath, cfg); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(charterd, "start", "--config", cfgPath).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(string(out), "no network in this data directory") || !strings.Contains(string(out), "charterd create") {
		t.Fatalf("charterd start on an empty directory: %v\n%s", err, out)
	}
	if _, err := os.Stat(dataDir); err == nil {
		t.Fatalf("charterd start on a missing directory created %s", dataDir)
	}

	n := runCharterd(t, dataDir, filepath.Join(dir, "charterd.log"), "create", "--config", cfgPath)
	n.waitFor(t, "healthy", func() bool {
		r, err := n.do(http.MethodGet, "/node/health", "", nil)
		return err == nil && r.Status == http.StatusOK
	})
	var network struct {
		Kind string `json:"network_kind"`
	}
	if err := json.Unmarshal(n.get(t, "/node/network").Body, &network); err != nil || network.Kind != "production" {
		t.Fatalf("/node/network of a created network: kind %q (%v), want production", network.Kind, err)
	}
	// Virtual evidence, which anyone can make, admits no one here.
	a := newAttacker(t)
	if r := a.join(n); r.Status != http.StatusForbidden || !bytes.Contains(r.Body, []byte("add_virtual_measurement")) {
		t.Fatalf("a virtual join of a production network: %d %s, want 403 naming add_virtual_measurement", r.Status, describeProblem(r))
	}
	n.Stop()
	out, err = exec.Command(charterd, "create", "--config", cfgPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already holds a network") {
		t.Fatalf("charterd create over an existing network: %v\n%s", err, out)
	}
}

// Governance retires the leader: every other node refuses its key at once,
// so it loses its quorum; the others elect a leader among themselves, which
// takes the retired node out of raft, and the network keeps registering.
func TestRetireLeader(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	lead, term := c.leader()
	c.govAccept("remove_node", fmt.Sprintf(`{"node_id":"%d"}`, lead))
	var others []int
	for i := 1; i <= 3; i++ {
		if i != lead {
			others = append(others, i)
		}
	}
	next, nextTerm := c.leader(lead)
	if next == lead || nextTerm <= term {
		t.Fatalf("after retiring leader %d (term %d): leader %d in term %d", lead, term, next, nextTerm)
	}
	eventually(t, 30*time.Second, fmt.Sprintf("node %d removes the retired leader %d from raft", next, lead), func() error {
		if nodes := c.nodes(next); nodes[uint64(lead)].Role != "removed" {
			return fmt.Errorf("%+v", nodes)
		}
		return nil
	})
	c.mustRegister(newPublisher(t, "after retiring the leader").unique(t), others...)
}

// Governance bounds the joins waiting to be trusted (set_node_join_limits):
// beyond the bound a new key is refused with 429 TooManyPendingNodes
// before anything is written, and a bound out of range is refused.
func TestJoinLimits(t *testing.T) {
	n := startNode(t, t.TempDir())
	m := devMember(n)
	for _, bad := range []string{`{"max_pending_nodes":0}`, `{"max_pending_nodes":65}`, `{"max_pending_nodes":"2"}`, `{"max_pending":2}`} {
		out, err := govCLI(t, n, m, "propose", "--action", "set_node_join_limits", "--args", bad)
		if err == nil || !strings.Contains(out, "max_pending") {
			t.Errorf("set_node_join_limits %s: %v\n%s; want a refusal naming the argument", bad, err, out)
		}
	}
	devGovAccept(t, n, "set_node_join_limits", map[string]int{"max_pending_nodes": 1})
	if r := newAttacker(t).join(n); r.Status != http.StatusOK {
		t.Fatalf("the first join under a bound of 1: %d %s", r.Status, describeProblem(r))
	}
	before := len(n.get(t, "/node/network/nodes").Body)
	r := newAttacker(t).join(n)
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" || !strings.Contains(describeProblem(r), "TooManyPendingNodes") {
		t.Fatalf("a second join under a bound of 1: %d %s (Retry-After %q), want 429 TooManyPendingNodes", r.Status, describeProblem(r), r.Header.Get("Retry-After"))
	}
	if after := len(n.get(t, "/node/network/nodes").Body); after != before {
		t.Errorf("a refused join changed /node/network/nodes")
	}
}
