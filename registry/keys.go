package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/cose"
	"github.com/go-chi/chi/v5"
)

// getKeySet serves the service keys that verify receipts, as a COSE_KeySet
// (RFC 9052 §7). Verifiers fetch it once and verify offline from then on.
func (s *Service) getKeySet(w http.ResponseWriter, r *http.Request) {
	b, err := cose.MarshalKeySet(s.Keys)
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return
	}
	w.Header().Set("Content-Type", ContentTypeKeySet)
	_, _ = w.Write(b)
}

func (s *Service) getKey(w http.ResponseWriter, r *http.Request) {
	kid := chi.URLParam(r, "kid")
	k, ok := s.Keys.Lookup([]byte(strings.ToLower(kid)))
	if !ok {
		WriteProblem(w, &Problem{Status: http.StatusNotFound, Title: "NotFound", Detail: fmt.Sprintf("no service key with kid %q", kid)})
		return
	}
	b, err := cose.MarshalCOSEKey(k)
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return
	}
	w.Header().Set("Content-Type", ContentTypeKey)
	_, _ = w.Write(b)
}

func (s *Service) getJWKS(w http.ResponseWriter, r *http.Request) {
	b, err := cose.MarshalJWKS(s.Keys)
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_, _ = w.Write(b)
}

// TransparencyConfiguration is served at
// /.well-known/transparency-configuration (SCRAPI draft-10 §2.1.1).
type TransparencyConfiguration struct {
	Issuer               string   `cbor:"issuer" json:"issuer"`
	RegistrationEndpoint string   `cbor:"registration_endpoint" json:"registration_endpoint"`
	SupportedAlgorithms  []string `cbor:"supported_signature_algorithms" json:"supported_signature_algorithms"`
	JWKSURI              string   `cbor:"jwks_uri" json:"jwks_uri"`
	KeysURI              string   `cbor:"scitt_keys_uri" json:"scitt_keys_uri"`
	CheckpointURI        string   `cbor:"checkpoint_uri" json:"checkpoint_uri"`
	NoteVerifierKey      string   `cbor:"checkpoint_note_verifier_key" json:"checkpoint_note_verifier_key"`
	MaxStatementBytes    int      `cbor:"max_statement_bytes" json:"max_statement_bytes"`
}

func (s *Service) getConfiguration(w http.ResponseWriter, r *http.Request) {
	pol, err := s.policy()
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return
	}
	algs := make([]string, 0, len(pol.AllowedAlgs))
	for _, a := range pol.AllowedAlgs {
		algs = append(algs, a.String())
	}
	if len(algs) == 0 {
		algs = []string{"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"}
	}
	c := TransparencyConfiguration{
		Issuer: s.Issuer, RegistrationEndpoint: "/entries", SupportedAlgorithms: algs,
		JWKSURI: "/jwks", KeysURI: "/.well-known/scitt-keys", CheckpointURI: "/checkpoint",
		NoteVerifierKey: s.NoteVerifierKey, MaxStatementBytes: pol.MaxStatementBytes,
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c)
		return
	}
	b, err := cbor.Marshal(c)
	if err != nil {
		WriteProblem(w, ProblemFor(err))
		return
	}
	w.Header().Set("Content-Type", "application/cbor")
	_, _ = w.Write(b)
}
