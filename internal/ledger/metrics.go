package ledger

import "github.com/prometheus/client_golang/prometheus"

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
}

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
	m.checkedByFilter = m.entryChecks.WithLabelValues("filter")
	m.checkedByStore = m.entryChecks.WithLabelValues("store")
	return m
}

func (m *metrics) applied(st State, registrations int) {
	m.size.Set(float64(st.Size))
	m.covered.Set(float64(st.LastCheckpointSize))
	m.registered.Add(float64(registrations))
}

// Collectors returns the ledger's metrics for the node's registry.
func (l *Ledger) Collectors() []prometheus.Collector {
	return []prometheus.Collector{l.m.size, l.m.covered, l.m.registered, l.m.rejected, l.m.batches, l.m.batchSize, l.m.checkpoints, l.m.entryChecks, l.m.appConflicts}
}
