package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/charterlog/charter/internal/app"
)

// The data reconciliation sample (samples/data-reconciliation), run as the
// sample's e2e test (test/e2e-test) runs it against a sandbox of three
// members, plus a user and a JWT caller.

type reconEnv struct {
	app *app.App
	s   *memState
}

func loadRecon(t testing.TB) *reconEnv {
	t.Helper()
	return loadReconWith(t, app.RuntimeOptions{})
}

func loadReconWith(t testing.TB, rt app.RuntimeOptions) *reconEnv {
	t.Helper()
	b, err := app.BuildBundle("../../samples/data-reconciliation")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Load(b, app.Options{Runtime: rt, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	s := newMemState()
	for _, m := range []string{"member0", "member1", "member2", "member3"} {
		status := "Active"
		if m == "member3" {
			status = "Accepted" // proposed, not yet acked
		}
		s.put("public:ccf.gov.members.certs", []byte(id(m)), []byte("PEM of "+m))
		s.put("public:ccf.gov.members.info", []byte(id(m)), []byte(`{"status":"`+status+`"}`))
	}
	s.put("public:ccf.gov.users.certs", []byte(id("user0")), []byte("PEM of user0"))
	return &reconEnv{app: a, s: s}
}

func jwtCaller(sub any) map[string]any {
	payload := map[string]any{"iss": "https://demo", "aud": "data-recon", "iat": 1700000000}
	if sub != nil {
		payload["sub"] = sub
	}
	return map[string]any{"policy": "jwt", "jwt": map[string]any{
		"keyIssuer": "https://demo", "header": map[string]any{"alg": "RS256", "kid": "demo"}, "payload": payload}}
}

// serviceResult is the body of every API answer.
type serviceResult struct {
	Content json.RawMessage `json:"content"`
	Error   *struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	} `json:"error"`
	Success    bool   `json:"success"`
	Failure    bool   `json:"failure"`
	StatusCode int    `json:"statusCode"`
	Status     string `json:"status"`
}

type reportItem struct {
	GroupStatus         string `json:"group_status"`
	MajorityMinority    string `json:"majority_minority"`
	CountOfUniqueValues int    `json:"count_of_unique_values"`
	MembersInAgreement  int    `json:"members_in_agreement"`
	Lei                 string `json:"lei"`
	Nace                string `json:"nace"`
}

// call runs a request and checks the ServiceResult invariants: JSON, the
// six fields in CCF's order, HTTP status = statusCode, success xor
// failure, status and error matching success, and no writes on failure.
func (e *reconEnv) call(t *testing.T, method, path, body string, caller any, status int) serviceResult {
	t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	r := do(t, e.app, e.s, method, path, "", b, caller)
	if r.err != nil {
		t.Fatalf("%s %s: %v", method, path, r.err)
	}
	what := fmt.Sprintf("%s %s %.60q", method, path, body)
	if r.res.StatusCode != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.res.StatusCode, status, r.res.Body)
	}
	if r.res.Headers["content-type"] != "application/json" {
		t.Fatalf("%s: content-type %q", what, r.res.Headers["content-type"])
	}
	var keys []string
	dec := json.NewDecoder(bytes.NewReader(r.res.Body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s: body %s", what, r.res.Body)
	}
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(keys, ",") != "content,error,success,failure,statusCode,status" {
		t.Fatalf("%s: fields %v", what, keys)
	}
	var sr serviceResult
	if err := json.Unmarshal(r.res.Body, &sr); err != nil {
		t.Fatal(err)
	}
	ok := status == 200
	if sr.StatusCode != status || sr.Success != ok || sr.Failure == ok || (sr.Status == "Success") != ok || (sr.Error == nil) != ok {
		t.Fatalf("%s: %s", what, r.res.Body)
	}
	if !ok && (string(sr.Content) != "null" || r.res.WriteSet != nil) {
		t.Fatalf("%s: failure with content or writes: %s %+v", what, r.res.Body, r.res.WriteSet)
	}
	if method == "GET" && (!r.res.ReadOnly || r.res.WriteSet != nil) {
		t.Fatalf("%s: report endpoints are readonly", what)
	}
	return sr
}

func (e *reconEnv) ingest(t *testing.T, path, body string, caller any) {
	t.Helper()
	sr := e.call(t, "POST", path, body, caller, 200)
	if string(sr.Content) != `"data has ingested successfully"` {
		t.Fatalf("ingest: content %s", sr.Content)
	}
}

func (e *reconEnv) item(t *testing.T, key string, caller any) reportItem {
	t.Helper()
	sr := e.call(t, "GET", "/report/"+key, "", caller, 200)
	var it reportItem
	if err := json.Unmarshal(sr.Content, &it); err != nil {
		t.Fatal(err)
	}
	return it
}

func (e *reconEnv) report(t *testing.T, caller any) []reportItem {
	t.Helper()
	sr := e.call(t, "GET", "/report", "", caller, 200)
	var items []reportItem
	if err := json.Unmarshal(sr.Content, &items); err != nil {
		t.Fatal(err)
	}
	return items
}

func wantItem(t *testing.T, what string, got, want reportItem) {
	t.Helper()
	if got != want {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

const (
	leiInConsensus  = "984500F5BD5BE5767C51"
	leiFlips        = "9845001D460PEJE54159"
	leiNotEnough    = "984500BA57A56NBD3A24"
	leiMinority     = "9845002B6B074505A715"
	leiLackMajority = "984500E1B2CA1D4EKG67"
	leiOnlyMember1  = "254900Z8QM2AR51H5I26"
)

// The e2e data, constructed for the e2e's assertions:
//   - leiInConsensus: all three members say C.18.13;
//   - leiFlips: member0 (by CSV) says C.25.62, members 1 and 2 say C.25.61,
//     so it is LACK_OF_CONSENSUS until member0 re-ingests C.25.61 by JSON,
//     which makes it IN_CONSENSUS;
//   - leiLackMajority: member0 says A.01.1, members 1 and 2 say A01.1;
//   - leiNotEnough: members 1 and 2 agree, only two votes;
//   - leiMinority: members 0 and 2 disagree, only two votes;
//   - leiOnlyMember1: nobody else has it.
//
// member0's CSV uses CRLF, quoted and unquoted fields and a blank line.
const (
	member0CSV = "lei,nace\r\n" +
		leiInConsensus + ",C.18.13\r\n" +
		`"` + leiFlips + `","C.25.62"` + "\r\n" +
		"\r\n" +
		leiLackMajority + ",A.01.1\r\n" +
		leiMinority + `,"C.10.12"` + "\r\n"
	member1JSON = `[{"lei":"` + leiInConsensus + `","nace":"C.18.13"},{"lei":"` + leiFlips + `","nace":"C.25.61"},` +
		`{"lei":"` + leiLackMajority + `","nace":"A01.1"},{"lei":"` + leiNotEnough + `","nace":"F.41.2"},` +
		`{"lei":"` + leiOnlyMember1 + `","nace":"C.10.1"}]`
	member2JSON = `[{"lei":"` + leiInConsensus + `","nace":"C.18.13"},{"lei":"` + leiFlips + `","nace":"C.25.61"},` +
		`{"lei":"` + leiLackMajority + `","nace":"A01.1"},{"lei":"` + leiNotEnough + `","nace":"F.41.2"},` +
		`{"lei":"` + leiMinority + `","nace":"C.10.13"}]`
	member0JSONPart2 = `[{"lei":"` + leiFlips + `","nace":"C.25.61"},{"lei":"` + leiNotEnough + `","nace":"F.41.2"}]`
)

func TestDataReconSampleE2E(t *testing.T) {
	e := loadRecon(t)
	m0, m1, m2 := certCaller("member_cert", "member0"), certCaller("member_cert", "member1"), certCaller("member_cert", "member2")

	// The e2e's validation cases.
	e.call(t, "POST", "/csv/ingest", "lei,value\r\n"+leiLackMajority+",A01.1 \r\n", m0, 400) // wrong schema
	e.call(t, "POST", "/csv/ingest", member0JSONPart2, m0, 400)                              // JSON sent as CSV
	e.call(t, "POST", "/ingest", `[]`, m0, 400)
	e.call(t, "POST", "/ingest", `null`, m0, 400)
	e.call(t, "GET", "/report", "", m0, 400) // nothing to report yet

	e.ingest(t, "/csv/ingest", member0CSV, m0)
	e.ingest(t, "/ingest", member1JSON, m1)
	e.ingest(t, "/ingest", member2JSON, m2)

	// Full reports: the keys each caller submitted, in key order.
	var leis []string
	for _, it := range e.report(t, m0) {
		leis = append(leis, it.Lei)
	}
	if strings.Join(leis, ",") != strings.Join([]string{leiFlips, leiMinority, leiLackMajority, leiInConsensus}, ",") {
		t.Fatalf("member0's report: %v", leis)
	}
	r1 := e.report(t, m1)
	if len(r1) != 5 || r1[0].Lei != leiOnlyMember1 {
		t.Fatalf("member1's report: %+v", r1)
	}
	wantItem(t, "member1 only", r1[0], reportItem{"NOT_ENOUGH_DATA", "Majority", 1, 1, leiOnlyMember1, "C.10.1"})
	if n := len(e.report(t, m2)); n != 5 {
		t.Fatalf("member2's report has %d items", n)
	}

	// By id, as the e2e checks them.
	e.call(t, "GET", "/report/10", "", m0, 400)              // no such key
	e.call(t, "GET", "/report/"+leiOnlyMember1, "", m0, 400) // exists, not member0's
	e.call(t, "GET", "/report/"+leiNotEnough, "", m0, 400)
	inConsensus := reportItem{"IN_CONSENSUS", "Majority", 1, 3, leiInConsensus, "C.18.13"}
	for _, c := range []any{m0, m1, m2} {
		wantItem(t, "in consensus", e.item(t, leiInConsensus, c), inConsensus)
	}
	wantItem(t, "not enough data, majority", e.item(t, leiNotEnough, m2), reportItem{"NOT_ENOUGH_DATA", "Majority", 1, 2, leiNotEnough, "F.41.2"})
	wantItem(t, "not enough data, minority (1-1 tie)", e.item(t, leiMinority, m2), reportItem{"NOT_ENOUGH_DATA", "Minority", 2, 1, leiMinority, "C.10.13"})
	wantItem(t, "lack of consensus, majority", e.item(t, leiLackMajority, m2), reportItem{"LACK_OF_CONSENSUS", "Majority", 2, 2, leiLackMajority, "A01.1"})
	wantItem(t, "lack of consensus, minority", e.item(t, leiLackMajority, m0), reportItem{"LACK_OF_CONSENSUS", "Minority", 2, 1, leiLackMajority, "A.01.1"})
	wantItem(t, "before the flip, member2", e.item(t, leiFlips, m2), reportItem{"LACK_OF_CONSENSUS", "Majority", 2, 2, leiFlips, "C.25.61"})
	wantItem(t, "before the flip, member0", e.item(t, leiFlips, m0), reportItem{"LACK_OF_CONSENSUS", "Minority", 2, 1, leiFlips, "C.25.62"})

	// Storage: the private map data, lei -> {key, type, values: {callerId: nace}}.
	raw, err := e.s.GetKV("data", []byte(leiFlips))
	if err != nil {
		t.Fatal(err)
	}
	wantStored := `{"key":"` + leiFlips + `","type":"string","values":{"` + id("member0") + `":"C.25.62","` +
		id("member1") + `":"C.25.61","` + id("member2") + `":"C.25.61"}}`
	if string(raw) != wantStored {
		t.Fatalf("data[%s] = %s\nwant %s", leiFlips, raw, wantStored)
	}
	if n := len(e.s.maps["data"]); n != 6 {
		t.Fatalf("data has %d keys", n)
	}
	for m := range e.s.maps {
		if strings.HasPrefix(m, "public:") && !strings.HasPrefix(m, "public:ccf.gov.") {
			t.Fatalf("the sample wrote the public map %s", m)
		}
	}

	// member0 re-ingests by JSON: its vote changes, and the key flips.
	e.ingest(t, "/ingest", member0JSONPart2, m0)
	wantItem(t, "after the flip", e.item(t, leiFlips, m2), reportItem{"IN_CONSENSUS", "Majority", 1, 3, leiFlips, "C.25.61"})
	wantItem(t, "third vote", e.item(t, leiNotEnough, m0), reportItem{"IN_CONSENSUS", "Majority", 1, 3, leiNotEnough, "F.41.2"})
	wantItem(t, "e2e's final check", e.item(t, leiInConsensus, m2), inConsensus)

	// A JWT caller votes under its subject, and so does a user.
	alice := jwtCaller("alice@demo")
	e.ingest(t, "/ingest", `[{"lei":"`+leiInConsensus+`","nace":"C.18.13"}]`, alice)
	wantItem(t, "jwt caller", e.item(t, leiInConsensus, alice), reportItem{"IN_CONSENSUS", "Majority", 1, 4, leiInConsensus, "C.18.13"})
	if items := e.report(t, alice); len(items) != 1 || items[0].Lei != leiInConsensus {
		t.Fatalf("alice's report: %+v", items)
	}
	user0 := certCaller("user_cert", "user0")
	e.ingest(t, "/csv/ingest", "lei,nace\n"+leiInConsensus+",C.18.14\n", user0)
	wantItem(t, "user dissents", e.item(t, leiInConsensus, user0), reportItem{"LACK_OF_CONSENSUS", "Minority", 2, 1, leiInConsensus, "C.18.14"})
	wantItem(t, "members still agree", e.item(t, leiInConsensus, m0), reportItem{"LACK_OF_CONSENSUS", "Majority", 2, 4, leiInConsensus, "C.18.13"})
	raw, _ = e.s.GetKV("data", []byte(leiInConsensus))
	var stored struct{ Values map[string]string }
	if err := json.Unmarshal(raw, &stored); err != nil || stored.Values["alice@demo"] != "C.18.13" || stored.Values[id("user0")] != "C.18.14" || len(stored.Values) != 5 {
		t.Fatalf("data[%s] = %s", leiInConsensus, raw)
	}
}

func TestDataReconMajorityMinority(t *testing.T) {
	e := loadRecon(t)
	callers := []any{certCaller("member_cert", "member0"), certCaller("member_cert", "member1"),
		certCaller("member_cert", "member2"), certCaller("user_cert", "user0")}
	// PLURAL: A A B C. TIE: A A B B. Majority means the caller's value has
	// strictly more votes than any other value.
	for i, v := range []string{"A", "A", "B", "C"} {
		e.ingest(t, "/ingest", `[{"lei":"PLURAL","nace":"`+v+`"},{"lei":"TIE","nace":"`+[]string{"A", "A", "B", "B"}[i]+`"}]`, callers[i])
	}
	wantItem(t, "plurality", e.item(t, "PLURAL", callers[0]), reportItem{"LACK_OF_CONSENSUS", "Majority", 3, 2, "PLURAL", "A"})
	wantItem(t, "against a plurality", e.item(t, "PLURAL", callers[2]), reportItem{"LACK_OF_CONSENSUS", "Minority", 3, 1, "PLURAL", "B"})
	wantItem(t, "tie", e.item(t, "TIE", callers[0]), reportItem{"LACK_OF_CONSENSUS", "Minority", 2, 2, "TIE", "A"})
	wantItem(t, "other side of the tie", e.item(t, "TIE", callers[3]), reportItem{"LACK_OF_CONSENSUS", "Minority", 2, 2, "TIE", "B"})
}

func TestDataReconValidation(t *testing.T) {
	e := loadRecon(t)
	m0 := certCaller("member_cert", "member0")
	for _, body := range []string{``, `not json`, `[]`, `null`, `{}`, `{"lei":"X","nace":"Y"}`, `"X"`, `[1]`, `[null]`, `[[]]`,
		`[{"lei":"X"}]`, `[{"nace":"Y"}]`, `[{"lei":"X","nace":""}]`, `[{"lei":"  ","nace":"Y"}]`, `[{"lei":1,"nace":"Y"}]`,
		`[{"lei":"X","nace":true}]`, `[{"lei":"X","nace":null}]`, `[{"lei":"X","nace":{}}]`,
		`[{"lei":"X","nace":"Y"},{"lei":"Z"}]`, // one bad record refuses the batch
		`[{"lei":"` + strings.Repeat("L", 257) + `","nace":"Y"}]`,
	} {
		e.call(t, "POST", "/ingest", body, m0, 400)
	}
	for _, body := range []string{
		``, "\n", "lei,nace\n", "lei,nace", // no records
		"lei,value\nX,Y\n", "lei\nX\n", "nace\nY\n", "lei,nace,extra\nX,Y,Z\n", "lei,lei\nX,Y\n", "LEI,NACE\nX,Y\n", " lei,nace\nX,Y\n",
		`[{"lei":"X","nace":"Y"}]`, "{\"lei\": \"X\",\n \"nace\": \"Y\"}\n", // JSON sent as CSV
		"lei,nace\nX\n", "lei,nace\nX,Y,Z\n", // field counts
		"lei,nace\n\"X,Y\n", "lei,nace\nX,\"Y\n", // unterminated quotes
		"lei,nace\nX\"1,Y\n", "lei,nace\n\"X\"1,Y\n", "lei,nace\n \"X\",Y\n", // stray quotes
		"lei,nace\nX,\n", "lei,nace\n,Y\n", "lei,nace\nX,Y\nZ,\n", // empty values; one refuses all
	} {
		e.call(t, "POST", "/csv/ingest", body, m0, 400)
	}
	if len(e.s.maps["data"]) != 0 {
		t.Fatalf("a refused submission was stored: %v", e.s.maps["data"])
	}
}

// At most MAX_RECORDS (4096) records a submission: the runtime's limit on
// keys written by one transaction. A full submission takes about 50-70 ms
// of CPU (more under the race detector), so the test raises
// max_execution_time_ms, as an operator expecting big submissions would
// with set_js_runtime_options.
func TestDataReconMaxRecords(t *testing.T) {
	e := loadReconWith(t, app.RuntimeOptions{MaxExecutionTimeMs: 10000})
	m0 := certCaller("member_cert", "member0")
	var csv, js strings.Builder
	csv.WriteString("lei,nace\n")
	js.WriteString("[")
	for i := 0; i < 4096; i++ {
		fmt.Fprintf(&csv, "K%05d,V\n", i)
		if i > 0 {
			js.WriteString(",")
		}
		fmt.Fprintf(&js, `{"lei":"J%05d","nace":"V"}`, i)
	}
	e.call(t, "POST", "/csv/ingest", csv.String()+"K99999,V\n", m0, 400)
	e.call(t, "POST", "/ingest", js.String()+`,{"lei":"J99999","nace":"V"}]`, m0, 400)
	e.ingest(t, "/csv/ingest", csv.String(), m0)
	e.ingest(t, "/ingest", js.String()+"]", m0)
	if n := len(e.s.maps["data"]); n != 2*4096 {
		t.Fatalf("%d keys stored", n)
	}
}

func TestDataReconCSV(t *testing.T) {
	e := loadRecon(t)
	u := certCaller("user_cert", "user0")
	// BOM, header in the other order, quoted fields with doubled quotes,
	// commas and line breaks, CRLF, LF and CR line ends, a quoted empty
	// line, blank lines, unquoted spaces (trimmed by the sample, not the
	// parser), duplicate keys (the last vote wins), no final line break.
	csv := "\ufeffnace,lei\r\n" +
		`"He said ""hi"", ok",Q1` + "\n" +
		"\"line1\r\nline2\",Q2\r" +
		"\n\n" +
		"  spaced  ,  Q3  \r\n" +
		"first,Q4\n" +
		"\"\",\n" + // a quoted empty value: refused below as empty
		"last,Q4"
	e.call(t, "POST", "/csv/ingest", csv, u, 400)
	csv = strings.Replace(csv, "\"\",\n", "", 1)
	e.ingest(t, "/csv/ingest", csv, u)
	for lei, nace := range map[string]string{"Q1": `He said "hi", ok`, "Q2": "line1\r\nline2", "Q3": "spaced", "Q4": "last"} {
		if it := e.item(t, lei, u); it.Nace != nace || it.Lei != lei {
			t.Fatalf("%s: %+v, want nace %q", lei, it, nace)
		}
	}
	if n := len(e.s.maps["data"]); n != 4 {
		t.Fatalf("%d keys stored", n)
	}
	// A JSON number is a value too, kept as its decimal string.
	e.ingest(t, "/ingest", `[{"lei":"N1","nace":12.50}]`, u)
	if it := e.item(t, "N1", u); it.Nace != "12.5" {
		t.Fatalf("numeric nace: %+v", it)
	}
	// A subject named __proto__ is an ordinary voter.
	p := jwtCaller("__proto__")
	e.ingest(t, "/ingest", `[{"lei":"Q1","nace":"x"}]`, p)
	wantItem(t, "__proto__ voter", e.item(t, "Q1", p), reportItem{"NOT_ENOUGH_DATA", "Minority", 2, 1, "Q1", "x"})
}

func TestDataReconAuthentication(t *testing.T) {
	e := loadRecon(t)
	e.ingest(t, "/ingest", `[{"lei":"X","nace":"Y"}]`, certCaller("member_cert", "member0"))
	for name, caller := range map[string]any{
		"accepted (not active) member": certCaller("member_cert", "member3"),
		"unknown member":               certCaller("member_cert", "member9"),
		"unknown user":                 certCaller("user_cert", "user9"),
		"jwt without sub":              jwtCaller(nil),
		"jwt with empty sub":           jwtCaller(""),
		"jwt with numeric sub":         jwtCaller(7),
		"any_cert":                     map[string]any{"policy": "any_cert", "cert": "PEM"},
		"no caller":                    nil,
	} {
		for _, c := range []struct{ method, path, body string }{
			{"POST", "/ingest", `[{"lei":"X","nace":"Z"}]`}, {"POST", "/csv/ingest", "lei,nace\nX,Z\n"},
			{"GET", "/report", ""}, {"GET", "/report/X", ""},
		} {
			sr := e.call(t, c.method, c.path, c.body, caller, 401)
			if sr.Error.ErrorType != "Unauthorized" || sr.Error.ErrorMessage != "Unauthorized" {
				t.Fatalf("%s: %+v", name, sr.Error)
			}
		}
	}
	if raw, _ := e.s.GetKV("data", []byte("X")); string(raw) != `{"key":"X","type":"string","values":{"`+id("member0")+`":"Y"}}` {
		t.Fatalf("data[X] = %s", raw)
	}
}

func TestDataReconSwagger(t *testing.T) {
	e := loadRecon(t)
	for path, marker := range map[string]string{"/swagger": "SwaggerUIBundle", "/oauth2-redirect.html": "swaggerUIRedirectOauth2"} {
		r := do(t, e.app, e.s, "GET", path, "", nil, map[string]any{"policy": "no_auth"})
		if r.err != nil || r.res.StatusCode != 200 || r.res.Headers["content-type"] != "text/html" ||
			!strings.HasPrefix(string(r.res.Body), "<!DOCTYPE html>") || !strings.Contains(string(r.res.Body), marker) {
			t.Fatalf("%s: %+v %v", path, r.res, r.err)
		}
	}
	r := do(t, e.app, e.s, "GET", "/swagger.json", "", nil, map[string]any{"policy": "no_auth"})
	if r.err != nil || r.res.StatusCode != 200 || r.res.Headers["content-type"] != "application/json" {
		t.Fatalf("swagger.json: %+v %v", r.res, r.err)
	}
	var doc struct {
		OpenAPI    string                                `json:"openapi"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.res.Body, &doc); err != nil || doc.OpenAPI != "3.1.0" {
		t.Fatalf("swagger.json: %v %s", err, r.res.Body)
	}
	// Every documented operation is an endpoint of the bundle, and every
	// authenticated endpoint is documented.
	n := 0
	for p, ops := range doc.Paths {
		for method := range ops {
			path := strings.TrimPrefix(strings.ReplaceAll(p, "{id}", "K"), "/app")
			if _, _, ok := e.app.Match(method, path); !ok || !strings.HasPrefix(p, "/app/") {
				t.Fatalf("documented %s %s is not an endpoint", method, p)
			}
			n++
		}
	}
	if n != 4 {
		t.Fatalf("%d documented operations, want the 4 authenticated ones", n)
	}
	// Every $ref resolves.
	for _, ref := range strings.Split(string(r.res.Body), `"$ref":"#/components/schemas/`)[1:] {
		name := ref[:strings.IndexByte(ref, '"')]
		if doc.Components.Schemas[name] == nil {
			t.Fatalf("dangling $ref %s", name)
		}
	}
	// The endpoint contract as CCF's app.json has it.
	for _, ep := range []struct{ method, path, policies, mode string }{
		{"POST", "/ingest", "member_cert,user_cert,jwt", "readwrite"},
		{"POST", "/csv/ingest", "member_cert,user_cert,jwt", "readwrite"},
		{"GET", "/report", "member_cert,user_cert,jwt", "readonly"},
		{"GET", "/report/K", "member_cert,user_cert,jwt", "readonly"},
		{"GET", "/swagger", "no_auth", "readonly"},
		{"GET", "/oauth2-redirect.html", "no_auth", "readonly"},
		{"GET", "/swagger.json", "no_auth", "readonly"},
	} {
		got, _, ok := e.app.Match(ep.method, ep.path)
		if !ok {
			t.Fatalf("%s %s: no endpoint", ep.method, ep.path)
		}
		var ps []string
		for _, p := range got.Info.AuthnPolicies {
			ps = append(ps, p.Name)
		}
		if strings.Join(ps, ",") != ep.policies || got.Info.Mode != ep.mode || got.Info.ForwardingRequired != "always" {
			t.Fatalf("%s: %+v", got.Name(), got.Info)
		}
	}
}
