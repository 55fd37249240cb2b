package inspect

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// api serves an inspector's handler and calls it.
type api struct {
	t   *testing.T
	url string
}

func serveAPI(t *testing.T, in *Inspector) *api {
	t.Helper()
	s := httptest.NewServer(in.Handler())
	t.Cleanup(s.Close)
	return &api{t: t, url: s.URL}
}

// call sends a request to the API and decodes its JSON answer into v.
func (a *api) call(method, path, body string, v any, h ...string) *http.Response {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	for i := 0; i+1 < len(h); i += 2 {
		if h[i] == "Host" {
			req.Host = h[i+1]
		} else {
			req.Header.Set(h[i], h[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil && len(b) > 0 {
		if err := json.Unmarshal(b, v); err != nil {
			a.t.Fatalf("%s %s: %v in %q", method, path, err, b)
		}
	}
	return resp
}

func TestAPI(t *testing.T) {
	svc := newService(t, echo)
	in, hc := inspected(t, Options{})
	send(t, hc, "GET", svc.URL+"/first", "", nil)
	send(t, hc, "POST", svc.URL+"/second?x=1", `{"b":2}`, http.Header{"X-Ask": {"yes"}})
	a := serveAPI(t, in)

	var list []map[string]any
	resp := a.call("GET", "/api/requests", "", &list)
	if resp.StatusCode != 200 || len(list) != 2 {
		t.Fatalf("list: got %d with %d requests, want 200 with 2", resp.StatusCode, len(list))
	}
	for _, k := range []string{"id", "tunnel", "method", "path", "status", "duration_ms"} {
		if _, ok := list[0][k]; !ok {
			t.Errorf("list: no %q in %v", k, list[0])
		}
	}
	if list[0]["id"] != 2.0 || list[0]["path"] != "/second?x=1" || list[0]["status"] != 200.0 || list[0]["tunnel"] != "web" {
		t.Errorf("list: got newest %v, want id 2, /second?x=1, 200, tunnel web", list[0])
	}
	if r := a.call("GET", "/api/requests", "", nil, "If-None-Match", resp.Header.Get("ETag")); r.StatusCode != http.StatusNotModified {
		t.Errorf("unchanged list: got %d, want 304", r.StatusCode)
	}

	var d detail
	a.call("GET", "/api/requests/2", "", &d)
	if d.RequestHeaders.Get("X-Ask") != "yes" || d.ResponseHeaders.Get("X-Echo") != "yes" || d.RequestBody.Text == nil || *d.RequestBody.Text != `{"b":2}` {
		t.Errorf("detail: got %+v, want the headers both ways and the request body", d)
	}
	if r := a.call("GET", "/api/requests/99", "", nil); r.StatusCode != 404 {
		t.Errorf("unknown id: got %d, want 404", r.StatusCode)
	}

	var re detail
	resp = a.call("POST", "/api/requests/2/replay", `{"path":"/third"}`, &re, "Content-Type", "application/json")
	if resp.StatusCode != 200 || re.Status != 200 || re.ReplayOf != 2 || !strings.Contains(string(re.ResponseBody.Base64), `"uri":"/third"`) {
		t.Errorf("replay: got %d %+v, want 200 with the service's answer to /third", resp.StatusCode, re)
	}
	if n := svc.count.Load(); n != 3 {
		t.Errorf("the service counted %d, want 3", n)
	}
	if r := a.call("POST", "/api/requests/2/replay", `{"path":"no-slash"}`, nil); r.StatusCode != 400 {
		t.Errorf("bad edit: got %d, want 400", r.StatusCode)
	}
}

func TestAPIRefusesOtherSites(t *testing.T) {
	svc := newService(t, echo)
	in, hc := inspected(t, Options{})
	send(t, hc, "GET", svc.URL+"/", "", nil)
	a := serveAPI(t, in)
	for _, c := range []struct {
		name    string
		method  string
		path    string
		headers []string
		want    int
	}{
		{"by IP", "GET", "/api/requests", nil, 200},
		{"by localhost", "GET", "/api/requests", []string{"Host", "localhost:4040"}, 200},
		{"rebound name", "GET", "/api/requests", []string{"Host", "evil.example:4040"}, 403},
		{"page by rebound name", "GET", "/", []string{"Host", "evil.example"}, 403},
		{"replay from another site", "POST", "/api/requests/1/replay", []string{"Origin", "http://evil.example"}, 403},
		{"replay cross-site, no Origin", "POST", "/api/requests/1/replay", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"replay from a script", "POST", "/api/requests/1/replay", nil, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			if r := a.call(c.method, c.path, "", nil, c.headers...); r.StatusCode != c.want {
				t.Errorf("got %d, want %d", r.StatusCode, c.want)
			}
		})
	}
}

func TestPageIsServed(t *testing.T) {
	a := serveAPI(t, New(Options{}))
	for _, p := range []string{"/", "/app.js", "/style.css"} {
		if r := a.call("GET", p, "", nil); r.StatusCode != 200 {
			t.Errorf("%s: got %d, want 200", p, r.StatusCode)
		}
	}
}

func TestStartTakesTheNextFreePort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	in := New(Options{})
	addr, err := in.Start(taken.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	want := taken.Addr().(*net.TCPAddr).Port
	// The next port may itself be taken by someone else; any later one
	// within PortTries is right.
	if got := addr.(*net.TCPAddr).Port; got <= want || got >= want+PortTries {
		t.Errorf("got port %d, want one after %d", got, want)
	}
	resp, err := http.Get("http://" + addr.String() + "/api/requests")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the inspector on %v: %v %v", addr, resp, err)
	}
	resp.Body.Close()
}

// TestAPIWaitForChange: with ?wait and a current ETag the list waits for
// the next recorded request and answers it at once; with nothing new it
// answers 304 once the wait is over; a stale ETag gets the list without
// waiting; a page that goes away stops the wait.
func TestAPIWaitForChange(t *testing.T) {
	svc := newService(t, echo)
	in, hc := inspected(t, Options{})
	send(t, hc, "GET", svc.URL+"/first", "", nil)
	a := serveAPI(t, in)
	resp := a.call("GET", "/api/requests", "", nil)
	tag := resp.Header.Get("ETag")

	began := time.Now()
	if r := a.call("GET", "/api/requests?wait=0.3", "", nil, "If-None-Match", tag); r.StatusCode != http.StatusNotModified {
		t.Errorf("nothing new: got %d, want 304", r.StatusCode)
	}
	if took := time.Since(began); took < 300*time.Millisecond {
		t.Errorf("nothing new: answered after %v, want after the 300ms wait", took)
	}

	type answer struct {
		status int
		list   []map[string]any
		at     time.Time
	}
	got := make(chan answer, 1)
	go func() {
		var list []map[string]any
		r := a.call("GET", "/api/requests?wait=20", "", &list, "If-None-Match", tag)
		got <- answer{r.StatusCode, list, time.Now()}
	}()
	time.Sleep(200 * time.Millisecond)
	select {
	case g := <-got:
		t.Fatalf("answered %d before anything changed", g.status)
	default:
	}
	sent := time.Now()
	send(t, hc, "GET", svc.URL+"/second", "", nil)
	select {
	case g := <-got:
		if g.status != 200 || len(g.list) != 2 || g.list[0]["path"] != "/second" {
			t.Errorf("after a request: got %d with %v, want 200 with /second first", g.status, g.list)
		}
		t.Logf("answered %v after the request was sent", g.at.Sub(sent))
	case <-time.After(10 * time.Second):
		t.Fatal("the wait did not end when a request was recorded")
	}

	began = time.Now()
	if r := a.call("GET", "/api/requests?wait=20", "", nil, "If-None-Match", tag); r.StatusCode != 200 {
		t.Errorf("stale ETag: got %d, want 200", r.StatusCode)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("stale ETag: answered after %v, want at once", took)
	}

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", a.url+"/api/requests?wait=20", nil)
	req.Header.Set("If-None-Match", etagOf(in.version.Load()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	<-done
	deadline := time.Now().Add(10 * time.Second)
	for in.waiters.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := in.waiters.Load(); n != 0 {
		t.Errorf("%d waits still running after their pages went away", n)
	}
}
