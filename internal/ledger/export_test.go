package ledger

import (
	"time"

	dto "github.com/prometheus/client_model/go"
)

// AppConflicts is charter_ledger_app_conflicts_total.
func (l *Ledger) AppConflicts() float64 {
	var m dto.Metric
	if err := l.m.appConflicts.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// EntryFilterBuilt reports whether duplicate checks are answered by the
// entry filter (rather than all by the store).
func (l *Ledger) EntryFilterBuilt() bool { return l.filter.current.Load() != nil }

// SetOrphanGrace sets how long an orphaned proposal waits before it is
// answered ErrOutcomeUnknown.
func (l *Ledger) SetOrphanGrace(d time.Duration) {
	l.mu.Lock()
	l.orphanGrace = d
	l.mu.Unlock()
}
