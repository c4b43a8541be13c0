package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/loopback"
)

// clusterOpts shapes a test network.
type clusterOpts struct {
	// SnapshotEntries is every node's snapshot_entries (0: the default).
	SnapshotEntries uint64
	// Proxies routes every directed link i→j (raft and forwarded writes)
	// through its own TCP proxy, so that a link can be cut one way.
	Proxies bool
	// RegistrationWait is every node's registration_wait (0: the default).
	RegistrationWait time.Duration
	// CheckpointInterval is every node's checkpoint_interval (0: the default).
	CheckpointInterval time.Duration
	// Attestation is every node's attestation settings.
	Attestation config.Attestation
	// Members are the member certificate files of the new network (they
	// start Accepted); empty: the generated member0, active at once.
	Members []string
	// LedgerChunkTransactions is every node's ledger_chunk_transactions
	// (0: the default).
	LedgerChunkTransactions uint64
}

// cluster is a network of charterd processes started by startCluster.
type cluster struct {
	t        *testing.T
	dir      string
	issuer   string
	certPath string
	client   *http.Client
	members  []*member // members[i] is node i+1
	// proxies[[2]int{i, j}] carries node i's traffic to node j (1-based).
	proxies map[[2]int]*proxy
}

// member is one node of a cluster: its configuration, its current process
// and an HTTP view (*node, for the single-node helpers' requests).
type member struct {
	c       *cluster
	id      int
	cfgPath string
	dataDir string
	logPath string
	addr    string
	// firstArgs, if set, replace `start --config cfgPath` on the first start
	// (a node that joins runs `charterd join` once).
	firstArgs []string
	// nextEnv, if set, is added to the environment of the next start only.
	nextEnv []string
	*node   // URL and Client are fixed for the member's life

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// startCluster creates a network as an operator does: node 1 creates it
// (`charterd create`), every other node joins it by attestation (`charterd
// join`) in turn, so node i has id i. A network with the generated member0
// is created Opening (open_by_vote), its nodes join while it opens, and
// member0 then opens it; a consortium's (opts.Members) stays Opening. It
// waits until every node answers /node/health 200. The network's public
// files (service_cert.pem, member0's identity) are copied into the cluster's
// directory; no node's data directory holds another's files.
func startCluster(t *testing.T, n int, opts clusterOpts) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{t: t, dir: dir, certPath: filepath.Join(dir, "service_cert.pem"), proxies: map[[2]int]*proxy{}}
	ports := freeLoopbackPorts(t, n)
	urls := map[uint64]string{}
	for i, p := range ports {
		urls[uint64(i+1)] = "https://127.0.0.1:" + strconv.Itoa(p)
	}
	c.issuer = "charter:e2e-cluster:" + strconv.Itoa(ports[0])
	if opts.Proxies {
		for i := 1; i <= n; i++ {
			for j := 1; j <= n; j++ {
				if i != j {
					c.proxies[[2]int{i, j}] = newProxy(t, "127.0.0.1:"+strconv.Itoa(ports[j-1]))
				}
			}
		}
	}
	for i := 1; i <= n; i++ {
		nodeDir := filepath.Join(dir, fmt.Sprintf("node%d", i))
		cfg := config.Config{
			NodeID: uint64(i), DataDir: nodeDir, Addr: "127.0.0.1:" + strconv.Itoa(ports[i-1]),
			LogLevel: nodeLogLevel(t), SnapshotEntries: opts.SnapshotEntries,
			RegistrationWait: opts.RegistrationWait, CheckpointInterval: opts.CheckpointInterval,
			Attestation: opts.Attestation, LedgerChunkTransactions: opts.LedgerChunkTransactions,
		}
		if i == 1 {
			cfg.Issuer, cfg.Members, cfg.Development = c.issuer, opts.Members, true
			cfg.OpenByVote = len(opts.Members) == 0 && n > 1
		}
		if opts.Proxies {
			cfg.PeerDial = map[uint64]string{}
			for j := 1; j <= n; j++ {
				if j != i {
					cfg.PeerDial[uint64(j)] = "https://" + c.proxies[[2]int{i, j}].Addr()
				}
			}
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		cfgPath := filepath.Join(dir, fmt.Sprintf("node%d.json", i))
		if err := config.Write(cfgPath, cfg); err != nil {
			t.Fatal(err)
		}
		m := &member{
			c: c, id: i, cfgPath: cfgPath, dataDir: nodeDir, addr: cfg.Addr,
			logPath: filepath.Join(dir, fmt.Sprintf("node%d.log", i)),
			node:    &node{t: t, Dir: nodeDir, URL: urls[uint64(i)], CertPath: c.certPath},
		}
		if i == 1 {
			m.firstArgs = []string{"create", "--config", cfgPath}
		} else {
			m.firstArgs = []string{"join", "--config", cfgPath, "--target", urls[1]}
		}
		c.members = append(c.members, m)
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			m.killQuietly()
			if b, err := os.ReadFile(m.logPath); err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE")) {
				t.Errorf("node %d reported a data race; see %s", m.id, m.logPath)
			}
			if t.Failed() {
				t.Logf("last lines of node %d's log %s:\n%s", m.id, m.logPath, tailFile(m.logPath, 40))
				keepLog(t, m.logPath)
			}
		}
	})
	first := c.members[0]
	first.start()
	first.node.waitFor(t, "node 1 to create the network", func() bool {
		_, err := os.Stat(filepath.Join(first.dataDir, "node.url"))
		if !first.alive() {
			t.Fatalf("node 1 exited while creating the network: %v", first.exitErr())
		}
		return err == nil
	})
	publish := []string{"service_cert.pem"}
	if len(opts.Members) == 0 {
		publish = append(publish, "member0_cert.pem", "member0_privk.pem")
	}
	for _, f := range publish {
		if err := os.WriteFile(filepath.Join(dir, f), mustRead(t, filepath.Join(first.dataDir, f)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c.client = pinnedClient(t, c.certPath)
	for _, m := range c.members {
		m.node.Client = c.client
	}
	first.waitHealthy(30 * time.Second)
	for _, m := range c.members[1:] {
		// A joiner pins the network's certificate, which is public.
		if err := os.MkdirAll(m.dataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(m.dataDir, "service_cert.pem"), mustRead(t, c.certPath), 0o644); err != nil {
			t.Fatal(err)
		}
		m.start()
		m.waitHealthy(30 * time.Second)
	}
	// Healthy is not enough: a joiner serves as a learner before the
	// leader promotes it, and a test that cuts links at once would find a
	// two-voter network.
	for i := 2; i <= n; i++ {
		c.waitRole(uint64(i), "voter")
	}
	if len(opts.Members) == 0 && n > 1 {
		c.govAccept("transition_service_to_open", "{}")
	}
	for _, m := range c.members {
		m.waitHealthy(30 * time.Second)
	}
	return c
}

// freeLoopbackPorts picks n free loopback ports outside the kernel's
// ephemeral range (package loopback), for nodes whose address is written
// before they start.
func freeLoopbackPorts(t testing.TB, n int) []int {
	t.Helper()
	ports, err := loopback.Ports(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// node returns member i (1-based).
func (c *cluster) node(i int) *member { return c.members[i-1] }

// start runs the member's process with its configuration file.
func (m *member) start() {
	t := m.c.t
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done != nil {
		select {
		case <-m.done:
		default:
			t.Fatalf("node %d is already running", m.id)
		}
	}
	// A previous run's node.url is not this run's.
	_ = os.Remove(filepath.Join(m.dataDir, "node.url"))
	lf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(lf, "=== e2e: start %s\n", time.Now().Format(time.RFC3339Nano))
	args := []string{"start", "--config", m.cfgPath}
	if m.firstArgs != nil {
		args, m.firstArgs = m.firstArgs, nil
	}
	cmd := exec.Command(charterd, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	cmd.Env, m.nextEnv = append(cmd.Env, m.nextEnv...), nil
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	m.cmd, m.done = cmd, done
	go func() {
		err := cmd.Wait()
		lf.Close()
		m.mu.Lock()
		m.waitErr = err
		m.mu.Unlock()
		close(done)
	}()
}

func (m *member) doneCh() chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.done
}

func (m *member) alive() bool {
	select {
	case <-m.doneCh():
		return false
	default:
		return true
	}
}

func (m *member) exitErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.waitErr
}

// waitHealthy waits until the member answers /node/health 200.
func (m *member) waitHealthy(within time.Duration) {
	t := m.c.t
	t.Helper()
	eventually(t, within, fmt.Sprintf("node %d healthy", m.id), func() error {
		r, err := m.do(http.MethodGet, "/node/health", "", nil)
		if err == nil && r.Status == http.StatusOK {
			return nil
		}
		if !m.alive() {
			t.Fatalf("node %d exited before becoming healthy: %v", m.id, m.exitErr())
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("%d %s", r.Status, truncate(r.Body, 200))
	})
}

// kill9 kills node i with SIGKILL and waits for it.
func (c *cluster) kill9(i int) {
	c.t.Helper()
	m := c.node(i)
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		c.t.Fatalf("node %d did not die within 15s of SIGKILL", i)
	}
}

// stop sends node i SIGTERM and waits up to 15 s for a clean exit.
func (c *cluster) stop(i int) {
	c.t.Helper()
	m := c.node(i)
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatalf("node %d: %v", i, err)
	}
	select {
	case <-done:
		if err := m.exitErr(); err != nil {
			c.t.Errorf("node %d exited with %v after SIGTERM, want status 0", i, err)
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		c.t.Fatalf("node %d did not stop within 15s of SIGTERM", i)
	}
}

// restart starts node i again with the same configuration and waits until
// it is healthy.
func (c *cluster) restart(i int) {
	c.t.Helper()
	m := c.node(i)
	m.start()
	m.waitHealthy(30 * time.Second)
}

func (m *member) killQuietly() {
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
	default:
		_ = cmd.Process.Kill()
		<-done
	}
}

// consensus is GET /node/consensus.
type consensus struct {
	NodeID      uint64 `json:"node_id"`
	Leader      uint64 `json:"leader"`
	Term        uint64 `json:"term"`
	State       string `json:"state"`
	CommitIndex uint64 `json:"commit_index"`
}

func (m *member) consensus() (consensus, error) {
	var cs consensus
	r, err := m.do(http.MethodGet, "/node/consensus", "", nil)
	if err != nil {
		return cs, err
	}
	if r.Status != http.StatusOK {
		return cs, fmt.Errorf("/node/consensus: %d %s", r.Status, describeProblem(r))
	}
	err = json.Unmarshal(r.Body, &cs)
	return cs, err
}

// clusterHealth is GET /node/health with the fields a cluster adds.
type clusterHealth struct {
	Status         string `json:"status"`
	NodeID         uint64 `json:"node_id"`
	Leader         bool   `json:"leader"`
	LeaderID       uint64 `json:"leader_id"`
	View           uint64 `json:"view"`
	LedgerSize     uint64 `json:"ledger_size"`
	CheckpointSize uint64 `json:"checkpoint_size"`
}

func (m *member) clusterHealth() (clusterHealth, int, error) {
	var h clusterHealth
	r, err := m.do(http.MethodGet, "/node/health", "", nil)
	if err != nil {
		return h, 0, err
	}
	err = json.Unmarshal(r.Body, &h)
	return h, r.Status, err
}

// leader polls /node/consensus on the running members (bounded by 10 s)
// until one says it leads, and returns its id and term. skip lists ids not
// to ask (dead or cut off).
func (c *cluster) leader(skip ...int) (id int, term uint64) {
	c.t.Helper()
	waitUntil(c.t, 10*time.Second, "a node reports leading", func() bool {
		for _, m := range c.members {
			if contains(skip, m.id) || !m.alive() {
				continue
			}
			cs, err := m.consensus()
			if err == nil && cs.State == "StateLeader" && cs.Leader == uint64(m.id) {
				id, term = m.id, cs.Term
				return true
			}
		}
		return false
	})
	return id, term
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// keys fetches the receipt-signing keys from the first live member.
func (c *cluster) keys() cose.KeySet {
	c.t.Helper()
	for _, m := range c.members {
		if m.alive() {
			return m.node.keys(c.t)
		}
	}
	c.t.Fatal("no live node to fetch keys from")
	return nil
}

// waitSettled waits (bounded) until every listed member reports the same
// ledger and checkpoint size twice in a row 200 ms apart, and returns it.
func (c *cluster) waitSettled(within time.Duration, ids ...int) clusterHealth {
	c.t.Helper()
	if len(ids) == 0 {
		for _, m := range c.members {
			ids = append(ids, m.id)
		}
	}
	deadline := time.Now().Add(within)
	var prev []clusterHealth
	for {
		var cur []clusterHealth
		ok := true
		for _, id := range ids {
			h, st, err := c.node(id).clusterHealth()
			if err != nil || st != http.StatusOK {
				ok = false
				break
			}
			cur = append(cur, h)
		}
		if ok {
			same := true
			for _, h := range cur {
				if h.LedgerSize != cur[0].LedgerSize || h.CheckpointSize != cur[0].CheckpointSize {
					same = false
				}
			}
			if same && len(prev) == len(cur) && prev[0].LedgerSize == cur[0].LedgerSize && prev[0].CheckpointSize == cur[0].CheckpointSize {
				return cur[0]
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("nodes %v did not settle on one ledger within %v: %+v", ids, within, cur)
		}
		prev = cur
		// Settled is two reads this far apart agreeing: the interval is
		// the condition's definition.
		time.Sleep(200 * time.Millisecond)
	}
}

// attempt is one POST /entries of a registration.
type attempt struct {
	Node     int
	Sent     time.Time
	Answered time.Time
	Status   int // 0: transport error
}

// outcome is what clusterRegister saw for one statement.
type outcome struct {
	Statement []byte
	ID        string
	Call      time.Time // first POST sent
	Return    time.Time // receipt in hand
	Attempts  []attempt
	Receipt   []byte
	LeafIndex uint64
	Node      int // the node that answered the receipt
	Err       error
	last      string // the last refusal, for messages
}

// readLeafIndex sets LeafIndex from the receipt in hand, or Err if the
// receipt does not parse as one inclusion proof.
func (o *outcome) readLeafIndex() {
	if o.Err != nil || o.Receipt == nil {
		return
	}
	rc, err := cose.ParseReceipt(o.Receipt)
	if err != nil || len(rc.Inclusion) != 1 {
		o.Err = fmt.Errorf("receipt for %s from node %d: %v", o.ID, o.Node, err)
		return
	}
	o.LeafIndex = rc.Inclusion[0].LeafIndex
}

// register sends stmt, trying the given nodes in turn, and follows 303,
// 302, 503, 404-while-polling and transport errors as `charter register`
// does, for at most `within`. Every POST is recorded.
func (c *cluster) register(stmt []byte, within time.Duration, targets ...int) *outcome {
	out := &outcome{Statement: stmt, ID: entryID(stmt), Call: time.Now()}
	deadline := out.Call.Add(within)
	for k := 0; time.Now().Before(deadline); k++ {
		m := c.node(targets[k%len(targets)])
		a := attempt{Node: m.id, Sent: time.Now()}
		r, err := m.do(http.MethodPost, "/entries", "application/cose", stmt)
		a.Answered = time.Now()
		if err == nil {
			a.Status = r.Status
		}
		out.Attempts = append(out.Attempts, a)
		switch {
		case err != nil:
			out.last = fmt.Sprintf("node %d: %v", m.id, err)
			time.Sleep(50 * time.Millisecond) // a client's back-off before it retries, not a wait
			continue
		case r.Status == http.StatusCreated:
			out.Return, out.Receipt, out.Node = a.Answered, r.Body, m.id
		case r.Status == http.StatusSeeOther:
			loc := r.Header.Get("Location")
			if loc != "/entries/"+out.ID {
				out.Err = fmt.Errorf("303 from node %d with Location %q", m.id, loc)
				return out
			}
			if !c.poll(m, loc, deadline, out) {
				out.last = fmt.Sprintf("node %d: 303, then no receipt there", m.id)
				continue // lost (404) or the node went away: submit again
			}
		case r.Status == http.StatusServiceUnavailable:
			out.last = fmt.Sprintf("node %d: 503 %s", m.id, describeProblem(r))
			time.Sleep(100 * time.Millisecond) // a client's back-off before it retries, not a wait
			continue
		default:
			out.Err = fmt.Errorf("POST /entries on node %d: %d %s", m.id, r.Status, describeProblem(r))
			return out
		}
		out.readLeafIndex()
		return out
	}
	counts := map[string]int{}
	for _, a := range out.Attempts {
		counts[fmt.Sprintf("node%d:%d", a.Node, a.Status)]++
	}
	out.Err = fmt.Errorf("no receipt for %s within %v after %d POSTs (by node:status %v; last answer: %s)", out.ID, within, len(out.Attempts), counts, out.last)
	return out
}

// poll GETs loc on m until 200 (true, receipt recorded) or 404 / a
// transport error (false: submit again). 302 and 503 are retried for up to
// 5 s; then the registration is submitted again (to the next node), as a
// client that knows several endpoints would.
func (c *cluster) poll(m *member, loc string, deadline time.Time, out *outcome) bool {
	if d := time.Now().Add(5 * time.Second); d.Before(deadline) {
		deadline = d
	}
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // a client's poll interval; the GET is the condition
		g, err := m.do(http.MethodGet, loc, "", nil)
		if err != nil {
			return false
		}
		switch g.Status {
		case http.StatusOK:
			out.Return, out.Receipt, out.Node = time.Now(), g.Body, m.id
			return true
		case http.StatusFound, http.StatusServiceUnavailable:
		case http.StatusNotFound:
			return false
		default:
			out.Err = fmt.Errorf("GET %s on node %d: %d %s", loc, m.id, g.Status, describeProblem(g))
			return true
		}
	}
	return false
}

// mustRegister registers through the given nodes and fails the test if no
// receipt comes within 30 s.
func (c *cluster) mustRegister(stmt []byte, targets ...int) *outcome {
	c.t.Helper()
	o := c.register(stmt, 30*time.Second, targets...)
	if o.Err != nil {
		c.t.Fatalf("registering: %v", o.Err)
	}
	return o
}

// proxy is a TCP forwarder on a loopback port, for cutting one link.
type proxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu      sync.Mutex
	blocked bool
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
	// stalled, while closed-over by Stall, makes the connections open then
	// (and any accepted meanwhile) carry nothing, ever: packets dropped
	// rather than refused, and connections that stay dead after the link
	// returns, as TCP's retransmission backoff leaves them.
	stall chan struct{}
	dead  map[net.Conn]bool
}

// newProxy listens on 127.0.0.1:0 and forwards every connection to target.
func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		blocked := p.blocked
		p.mu.Unlock()
		if blocked {
			reset(in)
			continue
		}
		p.wg.Add(1)
		go p.forward(in)
	}
}

func (p *proxy) forward(in net.Conn) {
	defer p.wg.Done()
	out, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		reset(in)
		return
	}
	p.mu.Lock()
	if p.blocked || p.conns == nil {
		p.mu.Unlock()
		reset(in)
		reset(out)
		return
	}
	p.conns[in], p.conns[out] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go p.pipe(&wg, out, in)
	go p.pipe(&wg, in, out)
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, in)
	delete(p.conns, out)
	p.mu.Unlock()
}

// pipe copies src to dst until either ends, dropping what a stalled
// connection carries.
func (p *proxy) pipe(wg *sync.WaitGroup, dst, src net.Conn) {
	defer wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.isDead(src) {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	// One direction ended: end both, as a plain proxy would.
	dst.Close()
	src.Close()
}

func (p *proxy) isDead(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stall != nil {
		p.dead[c] = true
	}
	return p.dead[c]
}

// Stall drops everything the link carries, without closing a connection,
// until Unstall; the connections it touched stay dead after.
func (p *proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stall = make(chan struct{})
	if p.dead == nil {
		p.dead = map[net.Conn]bool{}
	}
	for c := range p.conns {
		p.dead[c] = true
	}
}

// Unstall carries new connections again.
func (p *proxy) Unstall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stall = nil
}

// reset closes c with an RST rather than a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// Block resets every open connection and every new one until Unblock.
func (p *proxy) Block() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = true
	for c := range p.conns {
		reset(c)
	}
}

// Unblock forwards new connections again.
func (p *proxy) Unblock() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = false
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		reset(c)
	}
	p.conns = nil
	p.mu.Unlock()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.t.Errorf("proxy to %s: connections still open 5s after close", p.target)
	}
}

// cut blocks both directions between node a and node b.
func (c *cluster) cut(a, b int) {
	c.proxies[[2]int{a, b}].Block()
	c.proxies[[2]int{b, a}].Block()
}

// heal unblocks every link.
func (c *cluster) heal() {
	for _, p := range c.proxies {
		p.Unblock()
		p.Unstall()
	}
}

// logContains reports whether node i's log holds a JSON line whose msg is msg.
// logCount counts node i's log records whose message is msg.
func (c *cluster) logCount(i int, msg string) int { return len(c.logRecords(i, msg)) }

// logRecords returns node i's JSON log records whose message is msg.
func (c *cluster) logRecords(i int, msg string) []map[string]any {
	b, err := os.ReadFile(c.node(i).logPath)
	if err != nil {
		return nil
	}
	var out []map[string]any
	for _, line := range strings.Split(string(b), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func (c *cluster) logContains(i int, msg string) bool { return c.logCount(i, msg) > 0 }

// becameLeader returns when node i's log first says it became leader after
// since (zero if it does not).
func (c *cluster) becameLeader(i int, since time.Time) time.Time {
	b, err := os.ReadFile(c.node(i).logPath)
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		var rec struct {
			Time  time.Time `json:"time"`
			Msg   string    `json:"msg"`
			State string    `json:"state"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "raft leader changed" && rec.State == "StateLeader" && rec.Time.After(since) {
			return rec.Time
		}
	}
	return time.Time{}
}

// Environment for reading what the nodes of a failed cluster test did: the
// test's directory, their logs with it, is removed when the test ends.
const (
	// envKeepLogs names a directory into which a failed cluster test's
	// node logs are copied (under the test's name); make chaos sets it
	// from CHAOSLOGS.
	envKeepLogs = "CHARTER_E2E_LOGS"
	// envLogLevel is the cluster nodes' log level (debug, info, warn,
	// error); info when unset.
	envLogLevel = "CHARTER_E2E_LOG_LEVEL"
)

func nodeLogLevel(t *testing.T) string {
	switch l := os.Getenv(envLogLevel); l {
	case "":
		return "info"
	case "debug", "info", "warn", "error":
		return l
	default:
		t.Fatalf("%s=%q: want debug, info, warn or error", envLogLevel, l)
		return ""
	}
}

// keepLog copies a node's log into $CHARTER_E2E_LOGS/<test>/, if set.
func keepLog(t *testing.T, path string) {
	dir := os.Getenv(envKeepLogs)
	if dir == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Logf("keeping %s: %v", path, err)
		return
	}
	dst := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dst, 0o755); err == nil {
		err = os.WriteFile(filepath.Join(dst, filepath.Base(path)), b, 0o644)
	}
	if err != nil {
		t.Logf("keeping %s: %v", path, err)
		return
	}
	t.Logf("kept %s in %s", filepath.Base(path), dst)
}

// TestKeepLog: with CHARTER_E2E_LOGS set, a node's log is copied under the
// test's name, so it outlives the test's directory.
func TestKeepLog(t *testing.T) {
	keep := t.TempDir()
	t.Setenv(envKeepLogs, keep)
	log := filepath.Join(t.TempDir(), "node2.log")
	if err := os.WriteFile(log, []byte("raft: became leader\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	keepLog(t, log)
	b, err := os.ReadFile(filepath.Join(keep, "TestKeepLog", "node2.log"))
	if err != nil || string(b) != "raft: became leader\n" {
		t.Fatalf("kept log: %q, %v", b, err)
	}
}
