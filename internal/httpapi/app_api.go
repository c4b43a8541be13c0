package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/charterlog/charter/internal/app"
)

// getAppAPI is CCF's GET /app/api: an OpenAPI 3.0 document of the
// deployed app, generated as CCF generates it from the bundle's metadata
// (app.json): one operation per endpoint that is not openapi_hidden, at its
// template (relative to /app, the document's server), taken from the
// endpoint's own "openapi" object, with the template's parameters declared
// at the path and a default response where the endpoint gives none.
func (s *Server) getAppAPI(w http.ResponseWriter, r *http.Request) {
	a, err := s.cfg.Apps.Current()
	if err != nil {
		writeAppError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	var eps []*app.Endpoint
	if a != nil {
		eps = a.Endpoints()
	}
	doc, err := appOpenAPI(eps)
	if err != nil {
		writeAppError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

// appOpenAPI is the OpenAPI document of eps (none: no app is deployed, an
// empty document).
func appOpenAPI(eps []*app.Endpoint) (map[string]any, error) {
	paths := map[string]map[string]any{}
	for _, ep := range eps {
		if ep.Info.OpenAPIHidden {
			continue
		}
		op := map[string]any{}
		if len(ep.Info.OpenAPI) > 0 && string(ep.Info.OpenAPI) != "null" {
			// Bundle validation took only an object here; decode it fresh
			// per request, so that no answer shares a map with another.
			if err := json.Unmarshal(ep.Info.OpenAPI, &op); err != nil {
				return nil, err
			}
		}
		if _, ok := op["responses"]; !ok {
			op["responses"] = map[string]any{"default": map[string]any{"description": "Default response description"}}
		}
		item, ok := paths[ep.Template]
		if !ok {
			item = map[string]any{}
			if params := templateParams(ep.Template); len(params) > 0 {
				item["parameters"] = params
			}
			paths[ep.Template] = item
		}
		item[strings.ToLower(ep.Method)] = op
	}
	return map[string]any{
		"openapi": "3.0.0",
		"info": map[string]any{
			"title":       "JavaScript application",
			"description": "The endpoints of the JavaScript app that governance deployed (set_js_app), served by Charter",
			"version":     "1.0.0",
		},
		"servers":    []any{map[string]any{"url": "/app"}},
		"paths":      paths,
		"components": map[string]any{},
	}, nil
}

// templateParams are the path parameters a template names ("{id}"), as
// OpenAPI parameter objects.
func templateParams(template string) []any {
	var out []any
	for _, seg := range strings.Split(template, "/") {
		if name, ok := strings.CutPrefix(seg, "{"); ok {
			if name, ok = strings.CutSuffix(name, "}"); ok {
				out = append(out, map[string]any{"in": "path", "name": name, "required": true, "schema": map[string]any{"type": "string"}})
			}
		}
	}
	return out
}
