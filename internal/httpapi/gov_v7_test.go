package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// CCF 7's routes are served only for an api-version CCF 7 accepts; others
// are refused with CCF's codes before the handler (and so the body) is
// reached.
func TestRequireAPIVersion(t *testing.T) {
	for _, tc := range []struct {
		query string
		code  string // "" = served
	}{
		{"?api-version=2024-07-01", ""},
		{"?api-version=2023-06-01-preview", ""},
		{"", "MissingApiVersionParameter"},
		{"?other=1", "MissingApiVersionParameter"},
		{"?api-version=", "UnsupportedApiVersionValue"},
		{"?api-version=2024-07-02", "UnsupportedApiVersionValue"},
		{"?api-version=latest", "UnsupportedApiVersionValue"},
		{"?api-version=2024-07-01&api-version=2024-07-01", "UnsupportedApiVersionValue"},
	} {
		served := false
		h := requireAPIVersion(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served = true }))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/gov/members/proposals:create"+tc.query, nil))
		if tc.code == "" {
			if !served {
				t.Errorf("%q: refused (%d %s)", tc.query, w.Code, w.Body)
			}
			continue
		}
		var e CCFError
		if served || w.Code != http.StatusBadRequest || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error.Code != tc.code {
			t.Errorf("%q: served %v, %d %s; want 400 %s", tc.query, served, w.Code, w.Body, tc.code)
		}
	}
}
