package httpapi

import (
	"io"
	"net/http"

	"github.com/charterlog/charter/internal/join"
)

// postJoin answers POST /node/join (steps 2–4 of the protocol).
func (s *Server) postJoin(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, join.MaxRequest+1))
	if err != nil {
		writeError(w, r, problemFor(&join.Error{Kind: join.ErrInvalidRequest, Detail: "reading the join request: " + err.Error()}))
		return
	}
	resp, err := s.cfg.Joins.Join(r.Context(), body)
	if err != nil {
		writeError(w, r, problemFor(err))
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
