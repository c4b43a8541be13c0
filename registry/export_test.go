package registry

import "context"

// CheckBatch runs the batch's checks (checkBatch) over stmts with the
// service's policy and BatchWorkers, for tests and benchmarks of the
// parallel verification: each statement's entry id, or "problem: " and its
// title.
func (s *Service) CheckBatch(ctx context.Context, stmts [][]byte) ([]string, error) {
	pol, err := s.policy()
	if err != nil {
		return nil, err
	}
	var rp *RegistrationPolicy
	if s.CurrentRegistrationPolicy != nil {
		if rp, err = s.CurrentRegistrationPolicy(); err != nil {
			return nil, err
		}
	}
	out := make([]string, len(stmts))
	for i, c := range s.checkBatch(ctx, stmts, pol, rp) {
		if c.problem != nil {
			out[i] = "problem: " + c.problem.Title
			continue
		}
		out[i] = EntryID(c.entry)
	}
	return out, nil
}
