package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"keyhole/bus"
	"keyhole/internal/proxy"
	"keyhole/internal/syncbuf"
	"keyhole/registry"
)

// accessLine is one access-log line, its fields as strings.
type accessLine map[string]string

// accessLines returns the access-log lines in a text or JSON log.
func accessLines(t *testing.T, log, format string) []accessLine {
	t.Helper()
	var out []accessLine
	textField := regexp.MustCompile(`([a-z_]+)=("(?:[^"\\]|\\.)*"|\S*)`)
	for line := range strings.Lines(log) {
		l := accessLine{}
		if format == "json" {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("not a JSON line: %q: %v", line, err)
			}
			for k, v := range m {
				switch v := v.(type) {
				case string:
					l[k] = v
				case float64:
					l[k] = strconv.FormatFloat(v, 'f', -1, 64)
				case bool:
					l[k] = strconv.FormatBool(v)
				}
			}
		} else {
			for _, m := range textField.FindAllStringSubmatch(line, -1) {
				v := m[2]
				if u, err := strconv.Unquote(v); err == nil {
					v = u
				}
				l[m[1]] = v
			}
		}
		if l["msg"] == "request" {
			out = append(out, l)
		}
	}
	return out
}

// Every visitor request, whatever its end, gives exactly one access-log
// line naming host, method, path, status, bytes, duration, visitor, node,
// whether it crossed nodes and why it failed: in text and in JSON.
func TestAccessLogOneLinePerRequest(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) { accessLogSuite(t, format) })
	}
}

func accessLogSuite(t *testing.T, format string) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/slow"):
			select {
			case <-release:
			case <-r.Context().Done():
			}
		case r.URL.Path == "/big":
			w.Header().Set("Content-Length", "512001")
			w.Write(make([]byte, 512001))
		case r.URL.Path == "/big-streamed":
			for i := 0; i < 9; i++ {
				w.Write(make([]byte, 64<<10))
				w.(http.Flusher).Flush()
			}
		default:
			echo(w, r)
		}
	})
	ws := startWSEcho(t)
	logs := &syncbuf.Buffer{}
	newLog := func() *slog.Logger {
		if format == "json" {
			return slog.New(slog.NewJSONHandler(logs, nil))
		}
		return slog.New(slog.NewTextHandler(logs, nil))
	}
	b, reg := bus.NewMemory(), registry.NewMemory()
	cfg := proxy.Config{RequestTimeout: 500 * time.Millisecond, Bus: b, Registry: reg, AccessLog: newLog()}
	cfg.Node = "a"
	a := startProxy(t, cfg)
	cfg.Node = "b"
	nodeB := startProxy(t, cfg)
	c := startClient(t, a, be.URL, newKey(t))
	cws := startClient(t, a, ws.srv.URL, newKey(t))
	limited := startProxy(t, proxy.Config{TunnelRate: 1, AccessLog: newLog(), Node: "limited"})
	cl := startClient(t, limited, be.URL, newKey(t))

	_, port, _ := strings.Cut(hostOf(c.url), ":")
	unknown := "http://" + strings.Repeat("a", 52) + ".localhost:" + port
	type want struct {
		path, status, node, reason string
		cross                      bool
	}
	var wants []want
	send := func(p *testProxy, method, url string, body io.Reader, w want) {
		t.Helper()
		req, _ := http.NewRequest(method, url, body)
		resp, err := visitor(p).Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		wants = append(wants, w)
	}

	send(a, "POST", c.url+"/ok", strings.NewReader("hello"), want{path: "/ok", status: "200", node: "a"})
	send(nodeB, "GET", c.url+"/cross", nil, want{path: "/cross", status: "200", node: "b", cross: true})
	send(a, "GET", unknown+"/none", nil, want{path: "/none", status: "404", node: "a", reason: "no tunnel"})
	send(a, "GET", "http://example.com/elsewhere", nil, want{path: "/elsewhere", status: "404", node: "a", reason: "not served"})
	send(a, "POST", c.url+"/declared", bytes.NewReader(make([]byte, 512001)), want{path: "/declared", status: "413", node: "a", reason: "over"})
	send(a, "POST", c.url+"/chunked", io.MultiReader(bytes.NewReader(make([]byte, 512001))), want{path: "/chunked", status: "413", node: "a", reason: "over"})
	send(a, "GET", c.url+"/big", nil, want{path: "/big", status: "502", node: "a", reason: "over"})
	send(a, "GET", c.url+"/big-streamed", nil, want{path: "/big-streamed", status: "200", node: "a", reason: "over"})
	send(a, "GET", c.url+"/slow-timeout", nil, want{path: "/slow-timeout", status: "504", node: "a", reason: "in time"})

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	req, _ := http.NewRequestWithContext(ctx, "GET", c.url+"/slow-cancel", nil)
	if resp, err := visitor(a).Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("the canceled request got %d", resp.StatusCode)
	}
	cancel()
	wants = append(wants, want{path: "/slow-cancel", status: "499", node: "a", reason: "canceled"})

	for range 4 { // a rate of 1 a second: some of these are refused
		send(limited, "GET", cl.url+"/limited", nil, want{path: "/limited", node: "limited"})
	}

	conn, _ := wsDial(t, a, cws.url, nil, "chat.v1") // at /socket
	conn.WriteMessage(1, []byte("ping"))
	conn.ReadMessage()
	conn.Close()
	wants = append(wants, want{path: "/socket", status: "101", node: "a"})

	var lines []accessLine
	waitFor(t, "an access-log line for every request", func() bool {
		lines = accessLines(t, logs.String(), format)
		return len(lines) >= len(wants)
	})
	time.Sleep(200 * time.Millisecond) // any second line would be here by now
	lines = accessLines(t, logs.String(), format)
	byPath := map[string][]accessLine{}
	for _, l := range lines {
		byPath[l["path"]] = append(byPath[l["path"]], l)
	}
	statuses := map[string]int{}
	for _, w := range wants {
		got := byPath[w.path]
		if w.path == "/limited" {
			continue
		}
		if len(got) != 1 {
			t.Errorf("%s: got %d access-log lines, want 1: %v", w.path, len(got), got)
			continue
		}
		l := got[0]
		statuses[l["status"]]++
		if l["status"] != w.status || l["node"] != w.node || l["method"] == "" || l["host"] == "" ||
			l["visitor"] != "127.0.0.1" || l["duration"] == "" || l["bytes_in"] == "" || l["bytes_out"] == "" {
			t.Errorf("%s: got %v, want status %s on node %s with every field", w.path, l, w.status, w.node)
		}
		if got := l["cross_node"] == "true"; got != w.cross {
			t.Errorf("%s: cross_node %q, want %v", w.path, l["cross_node"], w.cross)
		}
		if !strings.Contains(l["reason"], w.reason) {
			t.Errorf("%s: reason %q, want one saying %q", w.path, l["reason"], w.reason)
		}
	}
	if l := byPath["/ok"]; len(l) == 1 && (l[0]["bytes_in"] != "5" || l[0]["bytes_out"] != "5") {
		t.Errorf("/ok: bytes in %s and out %s, want 5 each", l[0]["bytes_in"], l[0]["bytes_out"])
	}
	if l := byPath["/socket"]; len(l) == 1 && l[0]["bytes_in"] == "0" {
		t.Errorf("/socket: no bytes in counted for the WebSocket: %v", l[0])
	}
	limitedLines := byPath["/limited"]
	refused := 0
	for _, l := range limitedLines {
		if l["status"] == "429" && strings.Contains(l["reason"], "too many") {
			refused++
		}
	}
	if len(limitedLines) != 4 || limitedLines[0]["status"] != "200" || refused == 0 {
		t.Errorf("/limited: got %v, want 4 lines, the first 200, some 429", limitedLines)
	}
	if len(lines) != len(wants) {
		t.Errorf("got %d access-log lines for %d requests:\n%s", len(lines), len(wants), logs.String())
	}
}
