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
// microsecond), and a goroutine held on its thread wakes more slowly from
// a block, so a path's stages time a sample of its runs (Sampler: one
// request in SampleEvery, one raft Ready or batch in a few) and count the
// sample's time scaled up; every run is counted. Where the thread clock is missing the stages use wall time and
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
			"Time spent in a stage of the node's work, cumulative: the CPU time of the threads that ran it (clock=\"thread_cpu\"), estimated from a sample of its runs, or wall time where the system has no thread clock (clock=\"wall\").",
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

// SampleEvery is how many of a request path's runs a Sampler takes one
// of by default: enough samples for a steady mean (hundreds a second under
// load), few enough that the clock's system calls cost the node next to
// nothing.
const SampleEvery = 32

// Sampler times one in every few runs of a path of stages on the thread's
// CPU clock, and counts every run. A sampled run holds its goroutine on
// its thread: where the path blocks, the goroutine's wake-up then waits
// for that thread (tens of µs on a busy machine), which sampling also
// keeps rare.
type Sampler struct {
	every uint64 // 0: SampleEvery
	seen  atomic.Uint64
}

// NewSampler returns a sampler of one run in every.
func NewSampler(every int) *Sampler { return &Sampler{every: uint64(max(every, 1))} }

// Begin starts a run of the path; Lap each stage as it ends, then End on
// the same goroutine (or Finish the last stage). A sampled run keeps the
// goroutine on its thread until End.
func (p *Sampler) Begin() Span {
	every := p.every
	if every == 0 {
		every = SampleEvery
	}
	if p.seen.Add(1)%every != 0 {
		return Span{}
	}
	lockThread()
	return Span{scale: int64(every), at: clockNow()}
}

// Span is a run of a path in progress (Sampler.Begin).
type Span struct {
	scale int64 // the sampler's every for a sampled run; 0 for a run only counted
	at    time.Duration
}

// Split adds to st the time since the previous Split or Lap (or Begin),
// scaled up, if the run is sampled, and counts no run: for a stage that
// resumes after another ran inside it.
func (sp *Span) Split(st *Stage) {
	if sp.scale == 0 {
		return
	}
	now := clockNow()
	if d := now - sp.at; now >= 0 && sp.at >= 0 && d > 0 {
		st.nanos.Add(int64(d) * sp.scale)
	}
	sp.at = now
}

// Lap counts a run of stage st, which ended now, with its time since the
// previous Split or Lap (or Begin) scaled up if the run is sampled.
func (sp *Span) Lap(st *Stage) {
	st.runs.Add(1)
	sp.Split(st)
}

// End ends the run: later Laps count runs only. It may be called again.
func (sp *Span) End() {
	if sp.scale != 0 {
		sp.scale = 0
		unlockThread()
	}
}

// Finish is Lap(st) then End: the path's end.
func (sp *Span) Finish(st *Stage) {
	sp.Lap(st)
	sp.End()
}

// clockNow is the thread's CPU time, or wall time where that is missing.
func clockNow() time.Duration {
	if threadClock {
		return threadNow()
	}
	return time.Duration(time.Now().UnixNano())
}
