package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/charterlog/charter/cbor"
)

// load runs publishers that register distinct statements continuously,
// each statement through the nodes in round-robin order (a retry goes to
// the next node), until stop is called. Every registration goes into h.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// done counts each publisher's finished registrations.
	done []atomic.Int64
}

func startLoad(t *testing.T, c *cluster, h *history, publishers int, nodes []int) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, done: make([]atomic.Int64, publishers)}
	for w := range publishers {
		pub := newPublisher(t, fmt.Sprintf("e2e cluster publisher %d", w))
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for k := w; ctx.Err() == nil; k++ {
				stmt, err := pub.tryUnique()
				if err != nil {
					h.add(&outcome{Err: err})
					return
				}
				targets := make([]int, len(nodes))
				for i := range nodes {
					targets[i] = nodes[(k+i)%len(nodes)]
				}
				h.add(c.register(stmt, 20*time.Second, targets...))
				l.done[w].Add(1)
			}
		}()
	}
	t.Cleanup(l.stop)
	return l
}

// fill grows the ledger to at least size transactions (as node 1 counts
// them) with distinct statements sent in batches of fillBatch through the
// given nodes in turn, from publishers goroutines, and records each in h
// with its receipt: the one its batch's answer held, or the one GET
// /entries/{id} then returns. A test that needs thousands of acknowledged
// registrations, not the single-statement path or a load running beside
// something else, fills the ledger this way: one request carries
// fillBatch registrations, where startLoad sends one each.
func fill(t *testing.T, c *cluster, h *history, size uint64, publishers int, nodes []int) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range publishers {
		pub := newPublisher(t, fmt.Sprintf("e2e fill publisher %d", w))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; !t.Failed(); k++ {
				if hl, _, err := c.node(1).clusterHealth(); err == nil && hl.LedgerSize >= size {
					return
				}
				m := c.node(nodes[k%len(nodes)])
				if err := fillBatchVia(c, m, pub, h); err != nil {
					t.Errorf("filling the ledger through node %d: %v", m.id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

const fillBatch = 64

// fillBatchVia registers fillBatch new statements of pub in one POST
// /entries/batch to m and adds their outcomes to h. An error is a batch
// that was not answered 200 with one result per statement.
func fillBatchVia(c *cluster, m *member, pub *publisher, h *history) error {
	stmts := make([][]byte, fillBatch)
	for i := range stmts {
		var err error
		if stmts[i], err = pub.tryUnique(); err != nil {
			return err
		}
	}
	body, err := cbor.Marshal(stmts)
	if err != nil {
		return err
	}
	call := time.Now()
	r, err := m.doWithin(30*time.Second, http.MethodPost, "/entries/batch", "application/cbor", body)
	if err != nil {
		return err
	}
	if r.Status != http.StatusOK {
		return fmt.Errorf("POST /entries/batch: %d %s", r.Status, describeProblem(r))
	}
	var answers []batchAnswer
	if err := cbor.Unmarshal(r.Body, &answers); err != nil || len(answers) != len(stmts) {
		return fmt.Errorf("POST /entries/batch: %d results for %d statements (%v)", len(answers), len(stmts), err)
	}
	answered := time.Now()
	for i, a := range answers {
		out := &outcome{Statement: stmts[i], ID: entryID(stmts[i]), Call: call,
			Attempts: []attempt{{Node: m.id, Sent: call, Answered: answered, Status: r.Status}}}
		switch {
		case a.Title != "":
			out.Err = fmt.Errorf("POST /entries/batch on node %d, statement %d: %s: %s", m.id, i, a.Title, a.Detail)
		case len(a.Receipt) > 0:
			out.Return, out.Receipt, out.Node = answered, a.Receipt, m.id
		case !c.poll(m, "/entries/"+out.ID, time.Now().Add(20*time.Second), out) && out.Err == nil:
			out.Err = fmt.Errorf("node %d answered statement %d without a receipt, and GET /entries/%s gave none", m.id, i, out.ID)
		}
		out.readLeafIndex()
		h.add(out)
	}
	return nil
}

// waitRound waits until every publisher has finished the registration it
// had in flight when called and then one more, begun after the call: every
// registration begun before is in the history, and the load has run on
// against the network as it now is.
func (l *load) waitRound(t *testing.T, within time.Duration) {
	t.Helper()
	from := make([]int64, len(l.done))
	for i := range l.done {
		from[i] = l.done[i].Load()
	}
	waitUntil(t, within, "every publisher finishes a registration begun after now", func() bool {
		for i := range l.done {
			if l.done[i].Load() < from[i]+2 {
				return false
			}
		}
		return true
	})
}

// stop ends the load and waits for the registrations in flight (each is
// bounded by its own 20 s).
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

func failIfFailed(t *testing.T, h *history) {
	t.Helper()
	if f := h.failed(); len(f) > 0 {
		for _, o := range f[:min(5, len(f))] {
			t.Errorf("registration failed: %v", o.Err)
		}
		t.Fatalf("%d of %d registrations failed", len(f), len(h.ops))
	}
}

// TestClusterLeaderKill kills the leader with SIGKILL under load from 8
// publishers writing to all three nodes, measures how long until a
// registration sent after the kill gets a 201, restarts the node and checks
// it catches up, and then checks the whole client history: linearizable
// leaf order, every acknowledged statement once with the same receipt on
// every node, and no fork among the checkpoints ever served.
func TestClusterLeaderKill(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	watch := watchCheckpoints(c)
	h := &history{}
	ld := startLoad(t, c, h, 8, []int{1, 2, 3})

	ld.waitRound(t, 60*time.Second)
	old, oldTerm := c.leader()
	killAt := time.Now()
	c.kill9(old)
	t.Logf("killed leader node %d (term %d) with %d registrations acknowledged", old, oldTerm, len(h.acked()))

	// The first 201 to a POST sent after the kill.
	failover := time.Duration(-1)
	firstAfterKill := func() bool {
		for _, a := range h.attempts() {
			if a.Status == http.StatusCreated && a.Sent.After(killAt) {
				if d := a.Answered.Sub(killAt); failover < 0 || d < failover {
					failover = d
				}
			}
		}
		return failover >= 0
	}
	waitUntil(t, time.Until(killAt.Add(10*time.Second)), "a registration sent after the kill gets a 201", firstAfterKill)
	// Registrations still in flight when that one was seen may have had an
	// earlier 201: recompute once they are all in the history.
	ld.waitRound(t, 60*time.Second)
	restartAt := time.Now()
	c.restart(old)
	ld.waitRound(t, 60*time.Second) // the load runs on against the restarted node
	ld.stop()
	firstAfterKill() // again, with every registration in the history
	newLeader, newTerm := c.leader()
	elected := "unknown"
	if at := c.becameLeader(newLeader, killAt); !at.IsZero() {
		elected = at.Sub(killAt).String()
	}
	t.Logf("failover: first 201 to a registration sent after the kill came %v after the kill (node %d logged becoming leader %s after it, term %d → %d)", failover, newLeader, elected, oldTerm, newTerm)
	if failover >= 3*time.Second {
		t.Errorf("failover took %v, want < 3s", failover)
	}
	if newTerm <= oldTerm {
		t.Errorf("leader after the kill is node %d in term %d, not beyond the killed leader's term %d", newLeader, newTerm, oldTerm)
	}
	failIfFailed(t, h)

	// The restarted node catches up with the others within 15 s.
	settled := c.waitSettled(15*time.Second-time.Since(restartAt)+time.Second, 1, 2, 3)
	t.Logf("node %d caught up %v after its restart: ledger size %d; %d registrations acknowledged in all", old, time.Since(restartAt), settled.LedgerSize, len(h.acked()))

	acked := h.acked()
	checkLinearizable(t, acked)
	checkEntries(t, c, acked, 1, 2, 3)
	checkSameTree(t, c, 1, 2, 3)
	watch.check(t, newLeader)
}

// TestClusterFollowerKillAndQuorumLoss: with one follower killed writes
// still succeed; with two nodes killed the survivor answers 503
// ServiceUnavailable within 5 s and never 201; after both restart, writes
// succeed again and every statement acknowledged before is still there.
func TestClusterFollowerKillAndQuorumLoss(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	pub := newPublisher(t, "e2e quorum publisher")
	lead, _ := c.leader()
	var followers []int
	for i := 1; i <= 3; i++ {
		if i != lead {
			followers = append(followers, i)
		}
	}
	h := &history{}
	registerAll := func(n int, nodes ...int) {
		t.Helper()
		for k := range n {
			o := c.register(pub.unique(t), 20*time.Second, nodes[k%len(nodes)])
			h.add(o)
			if o.Err != nil {
				t.Fatalf("registering through node %d: %v", nodes[k%len(nodes)], o.Err)
			}
		}
	}
	registerAll(6, 1, 2, 3)

	c.kill9(followers[0])
	t.Logf("killed follower node %d; leader is node %d", followers[0], lead)
	for k := range 6 {
		via := []int{lead, followers[1]}[k%2]
		o := c.register(pub.unique(t), 20*time.Second, via)
		h.add(o)
		if o.Err != nil {
			t.Fatalf("with one follower down, registering through node %d: %v", via, o.Err)
		}
		for _, a := range o.Attempts {
			if a.Status != http.StatusCreated {
				t.Errorf("with one follower down, POST /entries through node %d answered %d, want 201", via, a.Status)
			}
		}
	}

	c.kill9(followers[1])
	lostAt := time.Now()
	t.Logf("killed node %d too: node %d is alone", followers[1], lead)
	var got503 bool
	statuses := map[int]int{}
	survivor := c.node(lead)
	for time.Since(lostAt) < 5*time.Second {
		r, err := survivor.do(http.MethodPost, "/entries", "application/cose", pub.unique(t))
		if err != nil {
			t.Fatalf("POST /entries to the survivor: %v", err)
		}
		statuses[r.Status]++
		if r.Status == http.StatusCreated {
			t.Errorf("POST /entries answered 201 %v after quorum loss", time.Since(lostAt))
		}
		if r.Status == http.StatusServiceUnavailable {
			p, err := decodeProblem(r.Body)
			if ct := r.Header.Get("Content-Type"); ct != "application/concise-problem-details+cbor" || err != nil {
				t.Errorf("503 with Content-Type %q, body %q (%v); want concise problem details", ct, truncate(r.Body, 100), err)
			} else if p.Title != "ServiceUnavailable" {
				t.Errorf("503 with title %q (%s), want ServiceUnavailable", p.Title, p.Detail)
			}
			got503 = true
			t.Logf("503 %v after quorum loss: %s", time.Since(lostAt), p.Detail)
			break
		}
	}
	if !got503 {
		t.Fatalf("no 503 within 5s of quorum loss; statuses seen: %v", statuses)
	}
	// Nothing sent after the loss may succeed while it lasts.
	for range 3 {
		r, err := survivor.do(http.MethodPost, "/entries", "application/cose", pub.unique(t))
		if err != nil {
			t.Fatalf("POST /entries to the survivor: %v", err)
		}
		if r.Status == http.StatusCreated {
			t.Errorf("POST /entries answered 201 without a quorum")
		}
	}

	c.restart(followers[0])
	c.restart(followers[1])
	registerAll(6, 1, 2, 3)
	c.waitSettled(15*time.Second, 1, 2, 3)
	acked := h.acked()
	checkLinearizable(t, acked)
	checkEntries(t, c, acked, 1, 2, 3)
	checkSameTree(t, c, 1, 2, 3)
}

// TestChartedCluster runs `charterd cluster` as a user would: its files,
// registering with the charter CLI against a follower, a node killed and
// restarted by hand from its configuration file, and a clean Ctrl-C.
func TestChartedCluster(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net")
	logPath := filepath.Join(t.TempDir(), "cluster.log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	cmd := exec.Command(charterd, "cluster", "--nodes", "3", "--data", dir)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	var handStarted *exec.Cmd
	t.Cleanup(func() {
		if handStarted != nil {
			_ = handStarted.Process.Kill()
			_, _ = handStarted.Process.Wait()
		}
		if !exited {
			_ = cmd.Process.Kill()
			<-done
		}
		for i := 1; i <= 3; i++ { // children the cluster left behind
			if pid := readPid(filepath.Join(dir, fmt.Sprintf("node%d.pid", i))); pid > 0 && processAlive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			t.Logf("charterd cluster output:\n%s", tailFile(logPath, 30))
			for i := 1; i <= 3; i++ {
				p := filepath.Join(dir, fmt.Sprintf("node%d.log", i))
				t.Logf("last lines of %s:\n%s", p, tailFile(p, 20))
			}
		}
	})

	var urls []string
	waitUntil(t, 60*time.Second, "charterd cluster writes nodes.txt", func() bool {
		if b, err := os.ReadFile(filepath.Join(dir, "nodes.txt")); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			urls = strings.Fields(string(b))
			return true
		}
		select {
		case err := <-done:
			exited = true
			t.Fatalf("charterd cluster exited (%v) before writing nodes.txt", err)
		default:
		}
		return false
	})
	if len(urls) != 3 {
		t.Fatalf("nodes.txt lists %d URLs, want 3: %q", len(urls), urls)
	}
	for _, f := range []string{"service_cert.pem", "member0_cert.pem", "member0_privk.pem",
		"node1.json", "node2.json", "node3.json", "node1.pid", "node2.pid", "node3.pid"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v (want a non-empty file)", f, err)
		}
	}
	cert := filepath.Join(dir, "service_cert.pem")
	client := pinnedClient(t, cert)
	nodes := make([]*node, 3)
	for i, u := range urls {
		nodes[i] = &node{t: t, URL: u, CertPath: cert, Client: client}
		waitHealth(t, nodes[i], 30*time.Second)
	}

	// Every node records every node at the URL nodes.txt gives, the first
	// node included (its URL rides in the bootstrap configuration change):
	// a restarted node dials its peers from this record.
	for i, n := range nodes {
		eventually(t, 30*time.Second, fmt.Sprintf("node %d records the three nodes at their URLs", i+1), func() error {
			var v struct {
				Nodes []struct {
					ID   uint64 `json:"node_id"`
					URL  string `json:"url"`
					Role string `json:"role"`
				} `json:"nodes"`
			}
			if err := json.Unmarshal(n.get(t, "/node/consensus").Body, &v); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, rec := range v.Nodes {
				got[rec.URL] = rec.Role
			}
			for _, u := range urls {
				if got[u] != "voter" || len(v.Nodes) != 3 {
					return fmt.Errorf("it records %+v", v.Nodes)
				}
			}
			return nil
		})
	}

	pub := newPublisher(t, "e2e charterd cluster publisher")
	work := t.TempDir()
	registerCLI := func(url, name string) {
		t.Helper()
		stmt := filepath.Join(work, name+".cose")
		if err := os.WriteFile(stmt, pub.unique(t), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := runCLI(t, work, "register", "--url", url, "--cacert", cert, "--timeout", "30s", stmt)
		if err != nil {
			t.Fatalf("charter register --url %s: %v\n%s", url, err, out)
		}
		if st, err := os.Stat(filepath.Join(work, name+".ts.cose")); err != nil || st.Size() == 0 {
			t.Fatalf("charter register wrote no transparent statement: %v\n%s", err, out)
		}
	}
	registerCLI(urls[1], "via-node2")

	pid1 := readPid(filepath.Join(dir, "node1.pid"))
	if pid1 <= 0 {
		t.Fatal("node1.pid holds no pid")
	}
	if err := syscall.Kill(pid1, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 node 1 (pid %d): %v", pid1, err)
	}
	waitUntil(t, 10*time.Second, fmt.Sprintf("node 1 (pid %d) exits after SIGKILL", pid1), func() bool { return !processAlive(pid1) })
	n1log, err := os.OpenFile(filepath.Join(dir, "node1.log"), os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer n1log.Close()
	handStarted = exec.Command(charterd, "start", "--config", filepath.Join(dir, "node1.json"))
	handStarted.Stdout, handStarted.Stderr = n1log, n1log
	handStarted.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	if err := handStarted.Start(); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, nodes[0], 30*time.Second)
	registerCLI(urls[0], "via-restarted-node1")

	// Ctrl-C: the cluster stops its children and exits 0 within 20 s.
	pid2, pid3 := readPid(filepath.Join(dir, "node2.pid")), readPid(filepath.Join(dir, "node3.pid"))
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		exited = true
		if err != nil {
			t.Errorf("charterd cluster exited with %v after SIGINT, want 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("charterd cluster did not exit within 20s of SIGINT")
	}
	for _, pid := range []int{pid2, pid3} {
		waitUntil(t, 5*time.Second, fmt.Sprintf("node process %d exits with the cluster", pid), func() bool { return !processAlive(pid) })
	}
	// The hand-started node is ours to stop.
	_ = handStarted.Process.Signal(syscall.SIGTERM)
	if _, err := handStarted.Process.Wait(); err != nil {
		t.Error(err)
	}
	handStarted = nil
}

func waitHealth(t *testing.T, n *node, within time.Duration) {
	t.Helper()
	eventually(t, within, n.URL+" healthy", func() error {
		r, err := n.do(http.MethodGet, "/node/health", "", nil)
		if err == nil && r.Status != http.StatusOK {
			err = fmt.Errorf("status %d", r.Status)
		}
		return err
	})
}

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// processAlive reports whether pid runs (a zombie counts as gone).
func processAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}
