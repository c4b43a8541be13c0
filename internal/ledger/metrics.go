package ledger

import (
	"github.com/charterlog/charter/internal/stagetime"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	size         prometheus.Gauge
	covered      prometheus.Gauge
	registered   prometheus.Counter
	rejected     *prometheus.CounterVec
	batches      prometheus.Counter
	batchSize    prometheus.Histogram
	checkpoints  prometheus.Counter
	appConflicts prometheus.Counter
	// entryChecks counts duplicate checks by what answered them.
	entryChecks                     *prometheus.CounterVec
	checkedByFilter, checkedByStore prometheus.Counter
	// The ledger's stages of the registration path (stagetime), on the
	// CPU clock of the thread that runs them, as they block (on raft, on
	// Pebble's commit pipeline) and their wall time would count the wait;
	// one batch in stageSample and one Apply in stageSample are timed.
	sequencing *stagetime.Stage // the sequencer: encoding a batch and proposing it
	apply      *stagetime.Stage // applying committed raft entries, the store commit excluded
	commit     *stagetime.Stage // the apply's store commit (Pebble batch, not synced)
	checkpoint *stagetime.Stage // a checkpoint's tree root, signatures and encoding
	proposing  *stagetime.Sampler
	applying   *stagetime.Sampler
}

// stageSample is how many batches (or Apply calls) the ledger's stage
// clocks take one of: hundreds a second run under load, and a timed one
// wakes more slowly from a block (stagetime.Sampler).
const stageSample = 8

func newMetrics() *metrics {
	m := &metrics{
		size:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "charter_ledger_size", Help: "Transactions in the applied ledger."}),
		covered:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "charter_ledger_checkpoint_size", Help: "Tree size signed by the newest applied checkpoint."}),
		registered:   prometheus.NewCounter(prometheus.CounterOpts{Name: "charter_ledger_registrations_applied_total", Help: "Registrations applied (duplicates included)."}),
		rejected:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "charter_ledger_registrations_rejected_total", Help: "Registrations refused before sequencing, by reason."}, []string{"reason"}),
		batches:      prometheus.NewCounter(prometheus.CounterOpts{Name: "charter_ledger_batches_proposed_total", Help: "Raft entries proposed by the sequencer."}),
		batchSize:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "charter_ledger_batch_registrations", Help: "Registrations per proposed raft entry.", Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
		checkpoints:  prometheus.NewCounter(prometheus.CounterOpts{Name: "charter_ledger_checkpoints_proposed_total", Help: "Checkpoints proposed by this node."}),
		appConflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "charter_ledger_app_conflicts_total", Help: "App transactions refused at apply because a value they read had changed meanwhile (the node that ran the request runs it again)."}),
		entryChecks:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "charter_ledger_entry_checks_total", Help: "Lookups of a leaf entry (duplicate checks), by what answered: the in-memory filter (certainly absent) or the store."}, []string{"answer"}),
	}
	m.sequencing = stagetime.New("sequencing", stagetime.ThreadCPU)
	m.apply = stagetime.New("apply", stagetime.ThreadCPU)
	m.commit = stagetime.New("commit", stagetime.ThreadCPU)
	m.checkpoint = stagetime.New("checkpoint", stagetime.ThreadCPU)
	m.proposing, m.applying = stagetime.NewSampler(stageSample), stagetime.NewSampler(stageSample)
	m.checkedByFilter = m.entryChecks.WithLabelValues("filter")
	m.checkedByStore = m.entryChecks.WithLabelValues("store")
	return m
}

func (m *metrics) applied(st State, registrations int) {
	m.size.Set(float64(st.Size))
	m.covered.Set(float64(st.LastCheckpointSize))
	m.registered.Add(float64(registrations))
}

// committing runs commit, the apply's store commit, as the commit stage
// of the apply timed by span, outside its apply stage.
func (m *metrics) committing(span *stagetime.Span, commit func() error) error {
	span.Split(m.apply)
	err := commit()
	span.Lap(m.commit)
	return err
}

// Collectors returns the ledger's metrics for the node's registry.
func (l *Ledger) Collectors() []prometheus.Collector {
	return append([]prometheus.Collector{l.m.size, l.m.covered, l.m.registered, l.m.rejected, l.m.batches, l.m.batchSize, l.m.checkpoints, l.m.entryChecks, l.m.appConflicts},
		stagetime.Collectors(l.m.sequencing, l.m.apply, l.m.commit, l.m.checkpoint)...)
}
