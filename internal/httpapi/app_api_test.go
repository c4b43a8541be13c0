package httpapi

import (
	"encoding/json"
	"testing"

	"github.com/charterlog/charter/internal/app"
)

// /app/api is generated from the bundle's metadata as CCF generates it:
// an operation per visible endpoint, taken from its "openapi" object,
// template parameters declared at the path, a default response where the
// endpoint gives none, and nothing of a hidden endpoint.
func TestAppOpenAPI(t *testing.T) {
	eps := []*app.Endpoint{
		{Method: "GET", Template: "/accounts/{user_id}/{account}", Info: &app.EndpointInfo{
			OpenAPI: json.RawMessage(`{"summary": "balance", "responses": {"200": {"description": "the balance"}}}`)}},
		{Method: "POST", Template: "/accounts/{user_id}/{account}", Info: &app.EndpointInfo{}},
		{Method: "GET", Template: "/secret", Info: &app.EndpointInfo{OpenAPIHidden: true}},
	}
	doc, err := appOpenAPI(eps)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(doc)
	var got struct {
		OpenAPI string `json:"openapi"`
		Info    struct{ Title, Version string }
		Servers []struct{ URL string }
		Paths   map[string]struct {
			Parameters []struct {
				In, Name string
				Required bool
			}
			Get  map[string]any
			Post map[string]any
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.OpenAPI != "3.0.0" || got.Info.Title == "" || got.Info.Version == "" || len(got.Servers) != 1 || got.Servers[0].URL != "/app" {
		t.Errorf("document header: %s", b)
	}
	if _, ok := got.Paths["/secret"]; ok || len(got.Paths) != 1 {
		t.Errorf("paths %s: want /accounts/{user_id}/{account} only", b)
	}
	p := got.Paths["/accounts/{user_id}/{account}"]
	if len(p.Parameters) != 2 || p.Parameters[0].Name != "user_id" || p.Parameters[1].Name != "account" || p.Parameters[0].In != "path" || !p.Parameters[1].Required {
		t.Errorf("parameters %+v", p.Parameters)
	}
	if p.Get["summary"] != "balance" || p.Get["responses"].(map[string]any)["200"] == nil {
		t.Errorf("GET operation %v: not the endpoint's openapi", p.Get)
	}
	if p.Post["responses"].(map[string]any)["default"] == nil {
		t.Errorf("POST operation %v: want a default response", p.Post)
	}
	// No app deployed: a document with no paths.
	doc, _ = appOpenAPI(nil)
	if len(doc["paths"].(map[string]map[string]any)) != 0 {
		t.Errorf("no app: paths %v", doc["paths"])
	}
}
