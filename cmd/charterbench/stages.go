package main

// The stage breakdown: where a registration's server CPU goes. charterbench
// reads every node's /metrics before and after phase 1 and divides the
// growth of the node's stage clocks (charter_stage_seconds_total{stage,
// clock}, internal/stagetime) and of the Go runtime's GC CPU
// (go_cpu_classes_gc_…) by the registrations of the phase; charterd's CPU
// (all its processes, /proc) over the same registrations is the whole the
// rows are shares of. What no stage measures (HTTP and TLS, raft's own
// goroutine, Pebble's WAL writer, flushes and compactions, the scheduler)
// is the "other" row: the CPU minus every row above it.
//
// Every stage is CPU time of the threads that ran it (clock thread_cpu),
// not wall time, which would count a stage's waits on raft and on disk
// and, with the load generator on the same cores, for a core. The
// stages are estimated from a sample of their runs (one request in 32, one
// batch or raft Ready in 8): a short run's rows move by several µs.
// The GC row is the Go runtime's own estimate of its background work.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/charterlog/charter/internal/stagetime"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The Go runtime's GC CPU estimates (runtime/metrics /cpu/classes/gc/…),
// as the node's Go collector exports them.
const (
	gcTotalMetric  = "go_cpu_classes_gc_total_cpu_seconds_total"
	gcAssistMetric = "go_cpu_classes_gc_mark_assist_cpu_seconds_total"
)

// stageOrder is the order of the rows: the request's stages as a
// registration meets them, then the ledger's. A stage the node exports
// that is not listed here follows them, by name.
var stageOrder = []string{"decode", "chain", "signature", "policy", "receipt", "sequencing", "apply", "commit", "persist", "checkpoint"}

// maxMetricsBytes bounds one node's /metrics body: a node's is tens of
// KiB; a larger one is not a node's.
const maxMetricsBytes = 8 << 20

// stageClock is one stage's counters: cumulative seconds and runs.
type stageClock struct {
	seconds, runs float64
	clock         string
}

// stageSample is a reading of a network's stage and GC counters, summed
// over its nodes.
type stageSample struct {
	stages   map[string]stageClock
	gc       float64 // the runtime's GC CPU, seconds
	gcAssist float64 // the part of gc that ran in goroutines that allocated
	gcKnown  bool
	// storage is Pebble's byte counters (storageMetrics), absent from a
	// node that does not export them.
	storage map[string]float64
	// nodes is each node's own CPU and role, in the order of the
	// network's URLs.
	nodes []nodeCPU
}

// nodeCPU is one node's CPU (process_cpu_seconds_total) and whether it
// led (charter_raft_is_leader) when sampled; known is false for a node
// that exports neither.
type nodeCPU struct {
	seconds float64
	leader  bool
	known   bool
}

// storageMetrics are the store's byte counters (internal/store's
// Collector): what Pebble wrote and read for the node's writes, the work
// of the goroutines no stage timer sees. Each is printed per registration.
var storageMetrics = []struct{ metric, row string }{
	{"charter_store_wal_bytes_written_total", "wal"},
	{"charter_store_flushed_bytes_total", "flushed"},
	{"charter_store_compacted_bytes_total", "compacted"},
	{"charter_store_compaction_read_bytes_total", "compaction-read"},
}

// parseStageMetrics reads the stage and GC counters from a Prometheus text
// exposition (with Prometheus's own parser). It fails when the stage
// counters are missing: the node does not export the breakdown.
func parseStageMetrics(body []byte) (stageSample, error) {
	s := stageSample{stages: map[string]stageClock{}, storage: map[string]float64{}}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return s, fmt.Errorf("metrics: %w", err)
	}
	value := func(m *dto.Metric) float64 {
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		default:
			return m.GetUntyped().GetValue()
		}
	}
	for _, name := range []string{stagetime.SecondsMetric, stagetime.RunsMetric} {
		for _, m := range families[name].GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			st := labels["stage"]
			if st == "" {
				return s, fmt.Errorf("%s without a stage label", name)
			}
			c := s.stages[st]
			c.clock = labels["clock"]
			if name == stagetime.SecondsMetric {
				c.seconds = value(m)
			} else {
				c.runs = value(m)
			}
			s.stages[st] = c
		}
	}
	if len(s.stages) == 0 {
		return s, fmt.Errorf("no %s: the node does not export its stage clocks (a charterd older than this charterbench?)", stagetime.SecondsMetric)
	}
	gc, gcTotal := families[gcTotalMetric]
	assist, gcAssist := families[gcAssistMetric]
	if gcTotal && len(gc.GetMetric()) > 0 {
		s.gc = value(gc.GetMetric()[0])
	}
	if gcAssist && len(assist.GetMetric()) > 0 {
		s.gcAssist = value(assist.GetMetric()[0])
	}
	s.gcKnown = gcTotal && gcAssist
	for _, sm := range storageMetrics {
		if f, ok := families[sm.metric]; ok && len(f.GetMetric()) > 0 {
			s.storage[sm.row] = value(f.GetMetric()[0])
		}
	}
	cpu, cpuOK := families["process_cpu_seconds_total"]
	lead, leadOK := families["charter_raft_is_leader"]
	if cpuOK && leadOK && len(cpu.GetMetric()) > 0 && len(lead.GetMetric()) > 0 {
		s.nodes = []nodeCPU{{seconds: value(cpu.GetMetric()[0]), leader: value(lead.GetMetric()[0]) == 1, known: true}}
	} else {
		s.nodes = []nodeCPU{{}}
	}
	return s, nil
}

// scrapeStages reads the stage counters of every node and sums them.
func scrapeStages(ctx context.Context, c *http.Client, urls []*url.URL) (stageSample, error) {
	total := stageSample{stages: map[string]stageClock{}, gcKnown: true, storage: map[string]float64{}}
	for _, u := range urls {
		s, err := scrapeNode(ctx, c, u)
		if err != nil {
			return total, err
		}
		for name, st := range s.stages {
			t := total.stages[name]
			t.seconds += st.seconds
			t.runs += st.runs
			t.clock = st.clock
			total.stages[name] = t
		}
		total.gc += s.gc
		total.gcAssist += s.gcAssist
		total.gcKnown = total.gcKnown && s.gcKnown
		for row, v := range s.storage {
			total.storage[row] += v
		}
		total.nodes = append(total.nodes, s.nodes...)
	}
	return total, nil
}

func scrapeNode(ctx context.Context, c *http.Client, base *url.URL) (stageSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := base.JoinPath("metrics").String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return stageSample{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return stageSample{}, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetricsBytes+1))
	switch {
	case err != nil:
		return stageSample{}, fmt.Errorf("GET %s: %w", u, err)
	case resp.StatusCode != http.StatusOK:
		return stageSample{}, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	case len(body) > maxMetricsBytes:
		return stageSample{}, fmt.Errorf("GET %s: more than %d bytes", u, maxMetricsBytes)
	}
	s, err := parseStageMetrics(body)
	if err != nil {
		return s, fmt.Errorf("%s: %w", u, err)
	}
	return s, nil
}

// since is the growth of the counters from before to s.
func (s stageSample) since(before stageSample) stageSample {
	d := stageSample{stages: map[string]stageClock{}, gc: s.gc - before.gc, gcAssist: s.gcAssist - before.gcAssist,
		gcKnown: s.gcKnown && before.gcKnown, storage: map[string]float64{}}
	for row, v := range s.storage {
		if b, ok := before.storage[row]; ok {
			d.storage[row] = v - b
		}
	}
	for i, n := range s.nodes {
		if i < len(before.nodes) && n.known && before.nodes[i].known {
			// The role is the one at the end: a network whose leader
			// changed during the phase shows it as two busy nodes.
			d.nodes = append(d.nodes, nodeCPU{seconds: n.seconds - before.nodes[i].seconds, leader: n.leader, known: true})
		} else {
			d.nodes = append(d.nodes, nodeCPU{})
		}
	}
	for name, st := range s.stages {
		b := before.stages[name]
		d.stages[name] = stageClock{seconds: st.seconds - b.seconds, runs: st.runs - b.runs, clock: st.clock}
	}
	return d
}

// breakdown is what a phase's registrations cost the network, by stage.
type breakdown struct {
	registrations int
	nodes         int
	cpu           cpuUse
	stages        stageSample
	err           error // why the stages are unknown, or nil
}

// networkSample is a reading of a network's CPU and stage counters.
type networkSample struct {
	cpu    cpuSample
	stages stageSample
	err    error
}

// sampleNetwork reads the CPU of the network's processes (pids, none for
// --url) and every node's stage counters.
func sampleNetwork(ctx context.Context, nw *network, pids []int) networkSample {
	c := newClient(nw.roots)
	defer c.CloseIdleConnections()
	s, err := scrapeStages(ctx, c, nw.urls)
	return networkSample{cpu: readCPU(pids), stages: s, err: err}
}

// breakdownOf is the cost of the registrations between two samples.
func breakdownOf(before, after networkSample, registrations, nodes int) breakdown {
	b := breakdown{registrations: registrations, nodes: nodes, cpu: after.cpu.since(before.cpu), err: errors.Join(before.err, after.err)}
	if b.err == nil {
		b.stages = after.stages.since(before.stages)
	}
	return b
}

// writeBreakdown prints the server CPU per registration and the stage
// table. Every row starts with "stage NAME" so scripts can pick rows out.
func writeBreakdown(w io.Writer, b breakdown) {
	if b.registrations <= 0 {
		return
	}
	n := float64(b.registrations)
	perReg := func(seconds float64) float64 { return seconds * 1e6 / n }
	cpu := 0.0
	if b.cpu.known {
		cpu = perReg(b.cpu.charterd.Seconds())
		fmt.Fprintf(w, "server CPU per registration (phase 1): charterd %.1fµs (%s), charterbench %.1fµs\n",
			cpu, plural(b.nodes, "process", "processes"), perReg(b.cpu.bench.Seconds()))
		if c := b.cpu; c.wall > 0 {
			// On a shared machine, what else ran says how far to trust
			// the phase's rate (the CPU per registration moves less).
			fmt.Fprintf(w, "CPU over %.1fs of phase 1, in cores: machine busy %.2f of %d, charterd %.2f, charterbench %.2f, other processes %.2f\n",
				c.wall.Seconds(), c.machine.Seconds()/c.wall.Seconds(), c.cores, c.charterd.Seconds()/c.wall.Seconds(),
				c.bench.Seconds()/c.wall.Seconds(), max(c.machine-c.charterd-c.bench, 0).Seconds()/c.wall.Seconds())
		}
	} else {
		fmt.Fprintln(w, "server CPU per registration (phase 1): unknown (charterd's processes are read from /proc: Linux, with --charterd)")
	}
	if b.err != nil {
		fmt.Fprintf(w, "breakdown per registration unavailable: %v\n", b.err)
		return
	}
	if row := perNodeRow(b.stages.nodes, n); row != "" && len(b.stages.nodes) > 1 {
		fmt.Fprintln(w, row)
	}
	share := func(us float64) string {
		if cpu <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", 100*us/cpu)
	}
	fmt.Fprintf(w, "breakdown per registration (phase 1, %d registrations, /metrics of %s):\n", b.registrations, plural(b.nodes, "node", "nodes"))
	fmt.Fprintf(w, "%-5s %-14s %10s %8s %10s  %s\n", "", "stage", "µs/reg", "share", "runs/reg", "clock")
	sum := 0.0
	for _, name := range orderedStages(b.stages.stages) {
		st := b.stages.stages[name]
		us := perReg(st.seconds)
		sum += us
		fmt.Fprintf(w, "%-5s %-14s %10.2f %8s %10.3f  %s\n", "stage", name, us, share(us), st.runs/n, st.clock)
	}
	if b.stages.gcKnown {
		// Assists run in the goroutine that allocates, inside whichever
		// stage (or other work) it was doing: counting them again here
		// would count them twice.
		bg := perReg(b.stages.gc - b.stages.gcAssist)
		sum += bg
		fmt.Fprintf(w, "%-5s %-14s %10.2f %8s %10s  %s\n", "stage", "gc", bg, share(bg), "-", "runtime estimate (background GC; assists are in the rows they interrupted)")
		fmt.Fprintf(w, "%-5s %-14s %10.2f %8s %10s  %s\n", "stage", "gc-assist", perReg(b.stages.gcAssist), share(perReg(b.stages.gcAssist)), "-", "runtime estimate (inside the rows above; not added)")
	} else {
		fmt.Fprintf(w, "%-5s %-14s %10s %8s %10s  %s\n", "stage", "gc", "-", "-", "-", "unknown: /metrics has no "+gcTotalMetric)
	}
	if cpu > 0 {
		other := cpu - sum
		fmt.Fprintf(w, "%-5s %-14s %10.2f %8s %10s  %s\n", "stage", "other", other, share(other), "-",
			"charterd CPU minus the rows above: HTTP/TLS, raft, Pebble's goroutines (WAL, flushes, compactions), scheduling")
		if other < 0 {
			fmt.Fprintln(w, "note: the rows add up to more than charterd's CPU: the wall-clock rows counted time their threads waited for a core (the machine is oversubscribed); read them as upper bounds")
		}
	}
	writeStorage(w, b.stages.storage, n)
}

// writeStorage prints the store's bytes per registration: the measure of
// the Pebble work inside the "other" row (WAL writes, flushes,
// compactions). Every row starts with "storage NAME".
func writeStorage(w io.Writer, storage map[string]float64, registrations float64) {
	if len(storage) == 0 {
		return
	}
	fmt.Fprintf(w, "%-7s %-16s %10s  %s\n", "", "store", "KiB/reg", "Pebble's counters, all nodes")
	for _, sm := range storageMetrics {
		if v, ok := storage[sm.row]; ok {
			fmt.Fprintf(w, "%-7s %-16s %10.2f\n", "storage", sm.row, v/1024/registrations)
		}
	}
}

// orderedStages are the stages in stageOrder, then any others by name.
func orderedStages(stages map[string]stageClock) []string {
	var out []string
	for _, name := range stageOrder {
		if _, ok := stages[name]; ok {
			out = append(out, name)
		}
	}
	var rest []string
	for name := range stages {
		if !slices.Contains(stageOrder, name) {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// phase1 runs phase 1 and keeps its cost: charterd's CPU (m.cpu) and the
// stage breakdown, from readings just before and after it.
func (m *measurement) phase1(ctx context.Context, o options, nw *network, pubs *publishers, statements *pool, stderr io.Writer) result {
	var pids []int
	if nw.d != nil {
		pids = nw.d.pids()
	}
	before := sampleNetwork(ctx, nw, pids)
	r := runPhase1(ctx, o, pubs, statements, stderr)
	after := sampleNetwork(ctx, nw, pids)
	m.breakdown = breakdownOf(before, after, r.ok, len(nw.urls))
	if m.breakdown.cpu.known {
		m.cpu = m.breakdown.cpu.charterd
	}
	return r
}

// perNodeRow is each node's CPU per registration and role, from its own
// /metrics (process_cpu_seconds_total, charter_raft_is_leader); "" if a
// node does not export them.
func perNodeRow(nodes []nodeCPU, registrations float64) string {
	parts := make([]string, len(nodes))
	for i, c := range nodes {
		if !c.known {
			return ""
		}
		role := "follower"
		if c.leader {
			role = "leader"
		}
		parts[i] = fmt.Sprintf("node %d (%s) %.1fµs", i+1, role, c.seconds*1e6/registrations)
	}
	return "CPU per registration by node (phase 1, each node's /metrics): " + strings.Join(parts, ", ")
}

// busiest is the most CPU any one node spent per registration, and
// whether every node's is known.
func busiest(b breakdown) (time.Duration, bool) {
	if b.registrations <= 0 || len(b.stages.nodes) == 0 {
		return 0, false
	}
	most := 0.0
	for _, c := range b.stages.nodes {
		if !c.known {
			return 0, false
		}
		most = max(most, c.seconds)
	}
	return time.Duration(most * 1e9 / float64(b.registrations)), true
}
