// Package stagetime owns the node's cumulative stage clocks: for each named
// stage of the registration path (decoding a statement, checking its
// signature, applying a batch, …) the total time spent in it and how many
// times it ran, as Prometheus counters. `charterbench` reads them before
// and after a load and divides by the registrations to print where a
// registration's server CPU goes.
//
// Stages are timed on the CPU clock of the OS thread that runs them
// (ThreadCPU), the goroutine locked to its thread meanwhile: wall time
// would count the time a stage waits (on an fsync, on raft) and, on a
// machine where the load generator shares the node's cores, the time its
// thread waits for a core. Reading that clock is a system call (about a
// microsecond), so the per-request stages time a sample of the requests
// (Sampler: one in SampleEvery) and count the sample's time scaled up;
// the stages that run once per batch time every run. Every run is
// counted. Where the thread clock is missing the stages use wall time and
// say so in their "clock" label. What the request path costs the node is
// BenchmarkRequestStages: well under 1% of a registration.
package stagetime

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The metrics every stage exports, labelled stage and clock.
const (
	SecondsMetric = "charter_stage_seconds_total"
	RunsMetric    = "charter_stage_runs_total"
)

// Clock is how a stage measures its time: the value of its "clock" label.
type Clock string

const (
	// Wall is elapsed time (time.Since): ThreadCPU's stand-in where the
	// thread clock is missing.
	Wall Clock = "wall"
	// ThreadCPU is the CPU time of the OS thread the stage ran on, the
	// goroutine locked to it for the stage (CLOCK_THREAD_CPUTIME_ID); on
	// systems without it, stages asking for it use Wall and say so.
	ThreadCPU Clock = "thread_cpu"
)

// Stage is one stage's cumulative time and run count. Its methods are safe
// for concurrent use. It is a prometheus.Collector of its two counters;
// several packages' stages may be registered on one registry, as each has
// its own label values.
type Stage struct {
	name  string
	clock Clock
	nanos atomic.Int64
	runs  atomic.Int64

	seconds, count *prometheus.Desc
}

// New returns a stage named name measured by clock. ThreadCPU falls back
// to Wall where the thread clock is missing (the label says which).
func New(name string, clock Clock) *Stage {
	if clock == ThreadCPU && !threadClock {
		clock = Wall
	}
	labels := prometheus.Labels{"stage": name, "clock": string(clock)}
	return &Stage{
		name: name, clock: clock,
		seconds: prometheus.NewDesc(SecondsMetric,
			"Time spent in a stage of the node's work, cumulative: the CPU time of the threads that ran it (clock=\"thread_cpu\"; a request's stages are estimated from one request in 32), or wall time where the system has no thread clock (clock=\"wall\").",
			nil, labels),
		count: prometheus.NewDesc(RunsMetric,
			"How many times a stage of the node's work ran: once per registration for the request's stages, once per batch, raft Ready or checkpoint for the others.",
			nil, labels),
	}
}

// Name is the stage's name (its "stage" label).
func (s *Stage) Name() string { return s.name }

// Clock is how the stage measures its time.
func (s *Stage) Clock() Clock { return s.clock }

// Add counts one run of d.
func (s *Stage) Add(d time.Duration) {
	s.nanos.Add(int64(d))
	s.runs.Add(1)
}

// Total is the time counted so far and the runs.
func (s *Stage) Total() (time.Duration, int64) {
	return time.Duration(s.nanos.Load()), s.runs.Load()
}

// Start begins a run on the stage's clock; Stop (exactly once, on the same
// goroutine) ends it. For a ThreadCPU stage the goroutine stays locked to
// its OS thread in between, so the thread's clock is this goroutine's
// alone: a goroutine that blocks there keeps its thread, which sleeps
// uncounted, and wakes on it. Stop adds the run.
func (s *Stage) Start() Run {
	if s.clock != ThreadCPU {
		return Run{s: s, wall: time.Now()}
	}
	lockThread()
	return Run{s: s, cpu: threadNow()}
}

// Run is a stage's run in progress (Stage.Start).
type Run struct {
	s    *Stage
	wall time.Time
	cpu  time.Duration
}

// Stop ends the run, counts it and returns the time it counted.
func (r Run) Stop() time.Duration {
	if r.s.clock != ThreadCPU {
		d := time.Since(r.wall)
		r.s.Add(d)
		return d
	}
	now := threadNow()
	unlockThread()
	d := now - r.cpu
	if now < 0 || r.cpu < 0 || d < 0 {
		d = 0
	}
	r.s.Add(d)
	return d
}

// Exclude takes d, counted by another stage that ran inside this one's
// run, off this stage's time, so that no time is counted twice.
func (s *Stage) Exclude(d time.Duration) { s.nanos.Add(-int64(d)) }

// Describe implements prometheus.Collector.
func (s *Stage) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.seconds
	ch <- s.count
}

// Collect implements prometheus.Collector.
func (s *Stage) Collect(ch chan<- prometheus.Metric) {
	d, n := s.Total()
	ch <- prometheus.MustNewConstMetric(s.seconds, prometheus.CounterValue, d.Seconds())
	ch <- prometheus.MustNewConstMetric(s.count, prometheus.CounterValue, float64(n))
}

// Collectors returns stages as collectors, for a Collectors method.
func Collectors(stages ...*Stage) []prometheus.Collector {
	out := make([]prometheus.Collector, len(stages))
	for i, s := range stages {
		out[i] = s
	}
	return out
}

// SampleEvery is how many of a path's runs a Sampler takes one of: enough
// samples for a steady mean (hundreds a second under load), few enough
// that the clock's system calls cost the node next to nothing.
const SampleEvery = 32

// Sampler times one in SampleEvery runs of a path of stages (a request's)
// on the thread's CPU clock, and counts every run.
type Sampler struct {
	seen atomic.Uint64
}

// Begin starts a run of the path; Lap each stage as it ends, then End on
// the same goroutine. A sampled run keeps the goroutine on its thread
// until End.
func (p *Sampler) Begin() Span {
	if p.seen.Add(1)%SampleEvery != 0 {
		return Span{}
	}
	lockThread()
	return Span{sampled: true, at: clockNow()}
}

// Span is a run of a path in progress (Sampler.Begin).
type Span struct {
	sampled bool
	at      time.Duration
}

// Lap counts a run of stage st, which ended now and began at the previous
// Lap (or Begin), with SampleEvery times its time if the run is sampled.
func (sp *Span) Lap(st *Stage) {
	st.runs.Add(1)
	if !sp.sampled {
		return
	}
	now := clockNow()
	if d := now - sp.at; now >= 0 && sp.at >= 0 && d > 0 {
		st.nanos.Add(int64(d) * SampleEvery)
	}
	sp.at = now
}

// End ends the run: later Laps count runs only. It may be called again.
func (sp *Span) End() {
	if sp.sampled {
		sp.sampled = false
		unlockThread()
	}
}

// clockNow is the thread's CPU time, or wall time where that is missing.
func clockNow() time.Duration {
	if threadClock {
		return threadNow()
	}
	return time.Duration(time.Now().UnixNano())
}
