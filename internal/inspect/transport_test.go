package inspect

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// service is a real HTTP server that counts the requests it answers.
type service struct {
	*httptest.Server
	count atomic.Int64
}

func newService(t *testing.T, h http.HandlerFunc) *service {
	t.Helper()
	s := &service{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.count.Add(1)
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// echo answers the method, path and body it got, and a header.
func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Echo", r.Header.Get("X-Ask"))
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"method": r.Method, "uri": r.RequestURI, "body": string(b), "host": r.Host})
}

// inspected returns an inspector and an http.Client whose requests to
// svc pass through the inspector's transport for tunnel "web".
func inspected(t *testing.T, opts Options) (*Inspector, *http.Client) {
	t.Helper()
	in := New(opts)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return in, &http.Client{Transport: in.Transport("web", tr)}
}

func send(t *testing.T, hc *http.Client, method, url, body string, h http.Header) (*http.Response, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestTransportRecordsTheExchange(t *testing.T) {
	svc := newService(t, echo)
	in, hc := inspected(t, Options{})
	h := http.Header{"X-Ask": {"please"}, "X-Forwarded-For": {"203.0.113.7, 10.0.0.1"}}
	resp, body := send(t, hc, "POST", svc.URL+"/things?x=1", `{"a":1}`, h)
	if resp.StatusCode != 200 || !strings.Contains(body, `"body":"{\"a\":1}"`) {
		t.Fatalf("got %d %q, want 200 and the body echoed", resp.StatusCode, body)
	}
	e := in.ring.get(1)
	if e == nil {
		t.Fatal("nothing recorded")
	}
	d := e.detail()
	checks := []struct {
		what string
		got  any
		want any
	}{
		{"tunnel", d.Tunnel, "web"},
		{"method", d.Method, "POST"},
		{"path", d.Path, "/things?x=1"},
		{"status", d.Status, 200},
		{"done", d.Done, true},
		{"visitor", d.Visitor, "203.0.113.7"},
		{"request header", d.RequestHeaders.Get("X-Ask"), "please"},
		{"response header", d.ResponseHeaders.Get("X-Echo"), "please"},
		{"request body", string(d.RequestBody.Base64), `{"a":1}`},
		{"request size", d.RequestSize, int64(7)},
		{"response body", string(d.ResponseBody.Base64), body},
		{"response size", d.ResponseSize, int64(len(body))},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
	if d.DurationMS <= 0 {
		t.Errorf("duration: got %v ms, want > 0", d.DurationMS)
	}
}

func TestTransportCapsBodies(t *testing.T) {
	big := strings.Repeat("x", 5000)
	svc := newService(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, big)
	})
	in, hc := inspected(t, Options{BodyCap: 100})
	_, body := send(t, hc, "PUT", svc.URL+"/", big+big, nil)
	if body != big {
		t.Fatalf("the answer lost bytes: got %d, want %d", len(body), len(big))
	}
	d := in.ring.get(1).detail()
	if len(d.RequestBody.Base64) != 100 || d.RequestBody.Size != 10000 || !d.RequestBody.Truncated {
		t.Errorf("request body: got %d kept of %d, truncated %v; want 100 of 10000, truncated", len(d.RequestBody.Base64), d.RequestBody.Size, d.RequestBody.Truncated)
	}
	if len(d.ResponseBody.Base64) != 100 || d.ResponseBody.Size != 5000 || !d.ResponseBody.Truncated {
		t.Errorf("response body: got %d kept of %d, truncated %v; want 100 of 5000, truncated", len(d.ResponseBody.Base64), d.ResponseBody.Size, d.ResponseBody.Truncated)
	}
}

// A streamed answer passes the wrapper as the service flushes it: the
// service writes its second piece only once the first has arrived, so a
// wrapper that held anything back would never see the end.
func TestTransportDoesNotHoldTheStreamBack(t *testing.T) {
	arrived := make(chan struct{})
	svc := newService(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-arrived:
			case <-time.After(5 * time.Second):
				return
			}
		}
	})
	in, hc := inspected(t, Options{})
	resp, err := hc.Get(svc.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	for i := range 3 {
		deadline := time.AfterFunc(2*time.Second, func() { resp.Body.Close() })
		n, err := resp.Body.Read(buf)
		deadline.Stop()
		if want := fmt.Sprintf("data: %d\n\n", i); err != nil || string(buf[:n]) != want {
			t.Fatalf("piece %d: got %q, %v; want %q as soon as it was flushed", i, buf[:n], err, want)
		}
		if s := in.ring.get(1).summary(); s.Status != 200 || s.Done {
			t.Errorf("while streaming: got status %d done %v, want 200 and not done", s.Status, s.Done)
		}
		arrived <- struct{}{}
	}
	io.Copy(io.Discard, resp.Body)
	if s := in.ring.get(1).summary(); !s.Done || s.ResponseSize != 27 {
		t.Errorf("after the end: got done %v, %d bytes; want done, 27 bytes", s.Done, s.ResponseSize)
	}
}

// An answer with no body keeps http.NoBody: the client tells an empty
// answer by it, and a HEAD's Content-Length is not a body to read.
func TestTransportKeepsNoBody(t *testing.T) {
	svc := newService(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1234")
	})
	in, hc := inspected(t, Options{})
	req, _ := http.NewRequest("HEAD", svc.URL+"/", nil)
	resp, err := hc.Transport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Body != http.NoBody || resp.ContentLength != 1234 {
		t.Errorf("got body %T and length %d, want http.NoBody and 1234", resp.Body, resp.ContentLength)
	}
	if s := in.ring.get(1).summary(); !s.Done || s.Status != 200 {
		t.Errorf("got %+v, want done with 200", s)
	}
}

func TestTransportRecordsAFailure(t *testing.T) {
	svc := newService(t, echo)
	url := svc.URL
	svc.Close()
	in, hc := inspected(t, Options{})
	if _, err := hc.Get(url + "/"); err == nil {
		t.Fatal("a closed service answered")
	}
	if s := in.ring.get(1).summary(); !s.Done || s.Status != 0 || s.Error == "" {
		t.Errorf("got %+v, want done with no status and an error", s)
	}
}

func TestReplay(t *testing.T) {
	svc := newService(t, echo)
	in, hc := inspected(t, Options{})
	_, first := send(t, hc, "POST", svc.URL+"/orders?n=1", "hello", http.Header{"X-Ask": {"one"}})
	ctx := context.Background()

	r, err := in.Replay(ctx, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := r.detail()
	if svc.count.Load() != 2 || string(d.ResponseBody.Base64) != first || d.ReplayOf != 1 || d.ID != 2 {
		t.Errorf("as it was: service counted %d, answer %q (replay of %d, id %d); want 2, %q, of 1, id 2",
			svc.count.Load(), d.ResponseBody.Base64, d.ReplayOf, d.ID, first)
	}

	method, path, body := "PUT", "/orders/7?dry=1", "edited"
	r, err = in.Replay(ctx, 1, &Edits{Method: &method, Path: &path, Body: &body, Headers: http.Header{"X-Ask": {"two"}, "Host": {"other.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	d = r.detail()
	var got map[string]string
	json.Unmarshal(d.ResponseBody.Base64, &got)
	want := map[string]string{"method": "PUT", "uri": "/orders/7?dry=1", "body": "edited", "host": "other.example"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("edited: the service saw %s %q, want %q", k, got[k], v)
		}
	}
	if d.ResponseHeaders.Get("X-Echo") != "two" {
		t.Errorf("edited: got X-Echo %q, want two", d.ResponseHeaders.Get("X-Echo"))
	}
}

func TestReplayRefusesABodyPastTheCap(t *testing.T) {
	svc := newService(t, echo)
	in, hc := inspected(t, Options{BodyCap: 4})
	send(t, hc, "POST", svc.URL+"/", "more than four", nil)
	if _, err := in.Replay(context.Background(), 1, nil); err != errBodyPartial {
		t.Errorf("got %v, want %v", err, errBodyPartial)
	}
	body := "ok"
	if _, err := in.Replay(context.Background(), 1, &Edits{Body: &body}); err != nil {
		t.Errorf("with the body given: %v", err)
	}
	if n := svc.count.Load(); n != 2 {
		t.Errorf("service counted %d, want 2", n)
	}
}

func BenchmarkTransport(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer svc.Close()
	base := &http.Transport{MaxIdleConnsPerHost: 64}
	defer base.CloseIdleConnections()
	for _, c := range []struct {
		name string
		rt   http.RoundTripper
	}{{"direct", base}, {"inspected", New(Options{}).Transport("web", base)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("GET", svc.URL+"/small?q=1", nil)
					resp, err := c.rt.RoundTrip(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		})
	}
}

// canned answers every request at once with the same small body, so
// that BenchmarkTransportOverhead measures the wrapper alone.
type canned struct{ body []byte }

func (c canned) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: 200, ContentLength: int64(len(c.body)), Request: req,
		Header: http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"1024"}, "Date": {"Mon, 01 Jan 2026 00:00:00 GMT"}},
		Body:   io.NopCloser(bytes.NewReader(c.body)),
	}, nil
}

func BenchmarkTransportOverhead(b *testing.B) {
	next := canned{body: bytes.Repeat([]byte("x"), 1024)}
	h := http.Header{"Accept": {"*/*"}, "User-Agent": {"bench"}, "X-Forwarded-For": {"127.0.0.1"}, "X-Forwarded-Host": {"x.localhost"}, "X-Forwarded-Proto": {"http"}}
	buf := make([]byte, 2048)
	for _, c := range []struct {
		name string
		rt   http.RoundTripper
	}{{"direct", next}, {"inspected", New(Options{}).Transport("web", next)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			req, _ := http.NewRequest("GET", "http://127.0.0.1:3000/small?q=1", nil)
			req.Header = h
			for b.Loop() {
				resp, err := c.rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				io.ReadFull(resp.Body, buf[:resp.ContentLength])
				resp.Body.Close()
			}
		})
	}
}
