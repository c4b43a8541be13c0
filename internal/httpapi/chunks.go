package httpapi

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"

	"github.com/charterlog/charter/internal/ledgerfiles"
	"github.com/charterlog/charter/registry"
	"github.com/go-chi/chi/v5"
)

// chunkInfo is one complete ledger chunk as GET /node/ledger/chunks lists it.
type chunkInfo struct {
	Name  string `json:"name"`
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
	Size  int64  `json:"size"`
}

// getLedgerChunks lists this node's complete ledger chunks, in order: what
// a backup downloads (charter ledger download). The chunk being written is
// not listed: it changes until it is complete.
func (s *Server) getLedgerChunks(w http.ResponseWriter, r *http.Request) {
	chunks, err := ledgerfiles.List(s.cfg.LedgerDir)
	if err != nil {
		writeError(w, r, &registry.Problem{Status: http.StatusInternalServerError, Title: "InternalError", Detail: "listing the ledger files: " + err.Error()})
		return
	}
	out := struct {
		Chunks []chunkInfo `json:"chunks"`
	}{Chunks: []chunkInfo{}}
	for _, c := range chunks {
		if !c.Committed {
			continue
		}
		fi, err := os.Stat(c.Path)
		if err != nil {
			continue
		}
		out.Chunks = append(out.Chunks, chunkInfo{Name: filepath.Base(c.Path), First: c.First, Last: c.Last, Size: fi.Size()})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// getLedgerChunk serves one complete chunk, with Range requests (a
// download resumes where it stopped). The name must be a complete chunk's:
// nothing else in the data directory is reachable.
func (s *Server) getLedgerChunk(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	c, ok := ledgerfiles.ParseName(name)
	if !ok || !c.Committed || filepath.Base(name) != name {
		writeError(w, r, notFound("no complete ledger chunk "+name+" (GET /node/ledger/chunks lists them)"))
		return
	}
	f, err := os.Open(filepath.Join(s.cfg.LedgerDir, name))
	if err != nil {
		writeError(w, r, notFound("no complete ledger chunk "+name+" on this node"))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		writeError(w, r, &registry.Problem{Status: http.StatusInternalServerError, Title: "InternalError", Detail: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, name, fi.ModTime(), f)
}
