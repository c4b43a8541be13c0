package ledger

// EntryFilterBuilt reports whether duplicate checks are answered by the
// entry filter (rather than all by the store).
func (l *Ledger) EntryFilterBuilt() bool { return l.filter.current.Load() != nil }
