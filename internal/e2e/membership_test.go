package e2e

import (
	"bytes"
	"crypto/elliptic"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/config"
)

type nodeRecord struct {
	ID   uint64 `json:"raft_id"`
	URL  string `json:"url"`
	Role string `json:"role"`
}

func (c *cluster) nodes(via int) map[uint64]nodeRecord {
	c.t.Helper()
	r := c.node(via).get(c.t, "/node/network/nodes")
	if r.Status != 200 {
		c.t.Fatalf("GET /node/network/nodes: %d %s", r.Status, r.Body)
	}
	var out struct{ Nodes []nodeRecord }
	if err := json.Unmarshal(r.Body, &out); err != nil {
		c.t.Fatal(err)
	}
	m := map[uint64]nodeRecord{}
	for _, n := range out.Nodes {
		m[n.ID] = n
	}
	return m
}

// addJoiner prepares a node that joins the cluster through node via: its
// data directory with only the network's public service certificate (the
// secrets come by attested release), a configuration without peers, and
// `charterd join` as its first command.
func (c *cluster) addJoiner(via int) *member {
	t := c.t
	t.Helper()
	i := len(c.members) + 1
	dir := filepath.Join(c.dir, fmt.Sprintf("joiner%d", i))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "service_cert.pem"), mustRead(t, c.certPath), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freeLoopbackPorts(t, 1)[0])
	cfg := config.Config{DataDir: dir, Addr: addr, LogLevel: "info"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(c.dir, fmt.Sprintf("joiner%d.json", i))
	if err := config.Write(cfgPath, cfg); err != nil {
		t.Fatal(err)
	}
	m := &member{
		c: c, id: i, cfgPath: cfgPath, dataDir: dir, addr: addr,
		logPath:   filepath.Join(c.dir, fmt.Sprintf("joiner%d.log", i)),
		firstArgs: []string{"join", "--config", cfgPath, "--target", c.node(via).URL},
		node:      &node{t: t, Dir: dir, URL: "https://" + addr, CertPath: c.certPath, Client: c.client},
	}
	c.members = append(c.members, m)
	return m
}

// A node joins a running network as a learner, catches up, is promoted
// to voter and serves; a removed node's id is never given out again.
func TestClusterJoinAndRemove(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{SnapshotEntries: 20})
	p := newPublisher(t, "join")
	var before []*outcome
	for range 40 {
		before = append(before, c.mustRegister(p.unique(t), 1))
	}

	j := c.addJoiner(2)
	j.start()
	// Untrusted, it serves no client (its certificate is client-only):
	// the leader's view says it joined.
	c.waitRole(4, "learner")
	// `charterd join` records the id it was given before it runs the node.
	var cfg config.Config
	c.node(1).node.waitFor(t, "the joiner's configuration to record its id", func() bool {
		var err error
		cfg, err = config.Load(j.cfgPath)
		return err == nil && cfg.Join
	})
	if cfg.NodeID != 4 || !cfg.Join {
		t.Fatalf("joiner's configuration after join: node_id %d, joined %v; want 4, true", cfg.NodeID, cfg.Join)
	}
	// The service is open, so a caught-up learner waits for governance to
	// trust it before it may vote: a second passes to show it is not
	// promoted (not a wait).
	time.Sleep(time.Second)
	if role := c.nodes(1)[4].Role; role != "learner" {
		t.Fatalf("node 4 is %s before governance trusted it, want learner", role)
	}
	// It joined by attestation: it holds none of the service's secrets yet.
	for _, f := range []string{"service_key.sealed", "note_key.sealed", "ledger_secret.sealed"} {
		if _, err := os.Stat(filepath.Join(j.dataDir, f)); err == nil {
			t.Fatalf("the untrusted joiner holds %s", f)
		}
	}
	c.govAccept("transition_node_to_trusted", `{"node_id":"4"}`)
	c.waitRoleWithin(15*time.Second, 4, "voter")
	// Trusted, it received the secrets sealed to its attested key (the
	// service key is written last).
	waitUntil(t, 15*time.Second, "the trusted joiner writes the service key", func() bool {
		_, err := os.Stat(filepath.Join(j.dataDir, "service_key.sealed"))
		return err == nil
	})
	j.waitHealthy(30 * time.Second)
	// Each node seals them under its own key: compare what they hold.
	for _, f := range []string{"service_key.sealed", "note_key.sealed", "ledger_secret.sealed"} {
		if !bytes.Equal(unsealed(t, j.dataDir, f), unsealed(t, c.node(1).dataDir, f)) {
			t.Fatalf("the trusted joiner's %s is not the network's", f)
		}
	}
	// It serves receipts for entries from before it joined, identical to
	// the others', and takes writes.
	for _, o := range before {
		r := j.get(t, "/entries/"+o.ID)
		if r.Status != 200 || string(r.Body) != string(o.Receipt) {
			t.Fatalf("joiner's receipt for %s: %d, equal %v", o.ID, r.Status, string(r.Body) == string(o.Receipt))
		}
	}
	c.mustRegister(p.unique(t), 4)

	// Restarting it uses `charterd start` with the id it was given.
	c.stop(4)
	c.restart(4)
	j.waitHealthy(30 * time.Second)

	// Governance retires it (remove_node); the leader takes it out of raft.
	c.govAccept("remove_node", `{"node_id":"4"}`)
	c.waitRole(4, "removed")
	c.kill9(4)
	// The network still has its three voters and takes writes.
	c.mustRegister(p.unique(t), 1, 2, 3)

	// The next node to join gets id 5, never 4 again.
	j2 := c.addJoiner(1)
	j2.start()
	c.waitRole(5, "learner")
	c.node(1).node.waitFor(t, "the second joiner's configuration to record its id", func() bool {
		cfg, err := config.Load(j2.cfgPath)
		return err == nil && cfg.Join
	})
	if cfg, err := config.Load(j2.cfgPath); err != nil || cfg.NodeID != 5 {
		t.Fatalf("second joiner got node id %d (%v), want 5", cfg.NodeID, err)
	}

	// Governance retires node 5 (remove_node); the leader takes it out.
	c.govAccept("remove_node", `{"node_id":"5"}`)
	c.waitRole(5, "removed")
}

// waitRole waits (≤30 s) until node 1 sees node id in role.
func (c *cluster) waitRole(id uint64, role string) {
	c.t.Helper()
	c.waitRoleWithin(30*time.Second, id, role)
}

// waitRoleWithin waits until node 1 sees node id in role.
func (c *cluster) waitRoleWithin(within time.Duration, id uint64, role string) {
	c.t.Helper()
	eventually(c.t, within, fmt.Sprintf("node %d is %s", id, role), func() error {
		if nodes := c.nodes(1); nodes[id].Role != role {
			return fmt.Errorf("%+v", nodes)
		}
		return nil
	})
}

// govAccept proposes one action as the network's member0 (active from
// genesis) and votes it through.
func (c *cluster) govAccept(action, args string) {
	c.t.Helper()
	m0 := &govMember{Name: "member0", KeyPath: filepath.Join(c.dir, "member0_privk.pem"), CertPath: filepath.Join(c.dir, "member0_cert.pem")}
	govAcceptAs(c.t, c.node(1).node, m0, action, json.RawMessage(args))
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Before a consortium opens its service, a node that joins is trusted on
// its attestation alone: it receives the secrets and votes without a
// proposal. Once the members open the service, the next one waits for
// transition_node_to_trusted.
func TestJoinWhileOpening(t *testing.T) {
	dir := t.TempDir()
	m0 := newGovMember(t, dir, "m0", elliptic.P256())
	c := startCluster(t, 1, clusterOpts{Members: []string{m0.CertPath}})
	network := func() string {
		var nw struct {
			Status string `json:"service_status"`
		}
		if err := json.Unmarshal(c.node(1).get(t, "/node/network").Body, &nw); err != nil {
			t.Fatal(err)
		}
		return nw.Status
	}
	if s := network(); s != "Opening" {
		t.Fatalf("a consortium's new network is %q, want Opening", s)
	}
	j := c.addJoiner(1)
	j.start()
	j.waitHealthy(30 * time.Second)
	c.waitRoleWithin(15*time.Second, 2, "voter") // joined while the service was opening
	c.node(1).waitFor(t, "the key of the node trusted while opening", func() bool {
		_, err := os.Stat(filepath.Join(j.dataDir, "service_key.sealed"))
		return err == nil
	})

	if out, err := govCLI(t, c.node(1).node, m0, "ack"); err != nil {
		t.Fatalf("ack: %v\n%s", err, out)
	}
	p := govJSON(t, c.node(1).node, m0, "propose", "--action", "transition_service_to_open", "--args", "{}")
	if v := govJSON(t, c.node(1).node, m0, "vote", p.ProposalID, "--accept"); v.State != "Accepted" {
		t.Fatalf("opening the service: %+v", v)
	}
	if s := network(); s != "Open" {
		t.Fatalf("after transition_service_to_open the network is %q", s)
	}
	j2 := c.addJoiner(1)
	j2.start()
	c.waitRole(3, "learner")
	time.Sleep(time.Second) // a second passes to show it is not promoted: not a wait
	if role := c.nodes(1)[3].Role; role != "learner" {
		t.Fatalf("a node that joined the open service is %s before governance trusted it", role)
	}
	if _, err := os.Stat(filepath.Join(j2.dataDir, "service_key.sealed")); err == nil {
		t.Fatal("a node that joined the open service holds the service key untrusted")
	}
}

// A node joins a development network (`charterd dev`, a single node):
// the dev node records its own evidence, the joiner is Pending until
// member0 trusts it, then receives the secrets, votes and takes writes.
func TestJoinDevNetwork(t *testing.T) {
	n := startNode(t, t.TempDir())
	n.waitFor(t, "the dev node's own evidence in /node/quotes", func() bool { return quoteCount(t, n) == 1 })

	jdir := t.TempDir()
	if err := os.WriteFile(filepath.Join(jdir, "service_cert.pem"), mustRead(t, n.CertPath), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{DataDir: jdir, Addr: "127.0.0.1:" + strconv.Itoa(freeLoopbackPorts(t, 1)[0]), LogLevel: "info"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(jdir, "node.json")
	if err := config.Write(cfgPath, cfg); err != nil {
		t.Fatal(err)
	}
	j := runCharterd(t, jdir, filepath.Join(jdir, "charterd.log"), "join", "--config", cfgPath, "--target", n.URL)
	nodes := func() map[uint64]nodeRecord {
		var out struct{ Nodes []nodeRecord }
		if err := json.Unmarshal(n.get(t, "/node/network/nodes").Body, &out); err != nil {
			t.Fatal(err)
		}
		m := map[uint64]nodeRecord{}
		for _, x := range out.Nodes {
			m[x.ID] = x
		}
		return m
	}
	n.waitFor(t, "the joiner's evidence recorded", func() bool { return quoteCount(t, n) == 2 })
	if role := nodes()[2].Role; role != "learner" {
		t.Fatalf("the joiner is %q before member0 trusts it", role)
	}
	devGovAccept(t, n, "transition_node_to_trusted", map[string]string{"node_id": "2"})
	n.waitFor(t, "the trusted joiner promoted", func() bool { return nodes()[2].Role == "voter" })
	// The leader records the release before it answers; the joiner writes
	// the files when the answer arrives.
	n.waitFor(t, "the trusted joiner's service key", func() bool {
		_, err := os.Stat(filepath.Join(jdir, "service_key.sealed"))
		return err == nil
	})
	pub := newPublisher(t, "dev join")
	j.Client = pinnedClient(t, n.CertPath)
	j.mustRegister(t, pub.unique(t))
}
