package e2e

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"keyhole/internal/proxy"
)

// rawGet writes a GET / for host by hand on a fresh connection to addr,
// with header lines exactly as given (names unnormalised), and returns the
// answer and its body.
func rawGet(t *testing.T, addr, host string, lines []string) (*http.Response, string) {
	t.Helper()
	return rawRequest(t, addr, "GET / HTTP/1.1", host, lines)
}

// rawRequest writes a request with the given request line by hand, byte
// for byte, and returns the answer and its body.
func rawRequest(t *testing.T, addr, requestLine, host string, lines []string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	lines = append(append([]string{requestLine, "Host: " + host}, lines...), "Connection: close", "", "")
	req := strings.Join(lines, "\r\n")
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	if _, err := bufio.NewReader(resp.Body).WriteTo(&body); err != nil {
		t.Fatal(err)
	}
	return resp, body.String()
}

// headersSeen is a backend that answers with the header it received, as
// JSON, names as they arrived.
func headersSeen(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(r.Header)
}

// A visitor's X_Forwarded_For is X-Forwarded-For to a CGI-style service
// (nginx with underscores_in_headers, PHP's $_SERVER): every spelling with
// '_' for '-' of a field the proxy sets or strips is dropped, from any
// peer; only a trusted front's hyphenated fields are kept.
func TestHTTPUnderscoreLookalikeHeaders(t *testing.T) {
	lookalikes := []string{
		"X_Forwarded_For: 203.0.113.66",
		"X-Real_Ip: 203.0.113.66",
		"X_Real_IP: 203.0.113.66",
		"X_Forwarded_Host: evil.example",
		"x_forwarded_proto: gopher",
		"X-Forwarded_Host: evil.example",
		"Proxy_Authorization: Basic Zm9vOmJhcg==",
		"Proxy_Connection: keep-alive",
		"Keep_Alive: timeout=5",
		"Transfer_Encoding: chunked",
	}
	hyphenated := []string{
		"X-Forwarded-For: 198.51.100.7",
		"X-Forwarded-Proto: https",
		"X-Forwarded-Host: front.example",
		"X-Real-Ip: 198.51.100.7",
		"Forwarded: for=198.51.100.7",
	}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		want    map[string]string // every protected-looking field the service may see
	}{
		{"untrusted visitor", nil, map[string]string{
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "",
		}},
		{"trusted front", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, map[string]string{
			"X-Forwarded-For": "198.51.100.7, 127.0.0.1", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "front.example",
			"X-Real-Ip": "198.51.100.7", "Forwarded": "for=198.51.100.7",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, proxy.Config{TrustedProxies: tt.trusted})
			be := backend(t, headersSeen)
			c := startClient(t, p, be.URL, newKey(t))
			host := hostOf(c.url)
			if tt.want["X-Forwarded-Host"] == "" {
				tt.want["X-Forwarded-Host"] = host
			}
			resp, body := rawGet(t, p.addr, host, append(append([]string{"X_Unrelated_Field: kept"}, lookalikes...), hyphenated...))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d %s, want 200", resp.StatusCode, body)
			}
			var seen map[string][]string
			if err := json.Unmarshal([]byte(body), &seen); err != nil {
				t.Fatalf("backend said %q: %v", body, err)
			}
			for name, v := range seen {
				if name == "X_unrelated_field" || name == "Accept-Encoding" || name == "User-Agent" {
					continue
				}
				want, ok := tt.want[name]
				if !ok {
					t.Errorf("service saw %s: %q, want it dropped", name, v)
					continue
				}
				if got := strings.Join(v, "|"); got != want {
					t.Errorf("service saw %s: %q, want %q", name, got, want)
				}
			}
			for name := range tt.want {
				if _, ok := seen[name]; !ok {
					t.Errorf("service did not see %s, want %q", name, tt.want[name])
				}
			}
			if got := strings.Join(seen["X_unrelated_field"], "|"); got != "kept" {
				t.Errorf("service saw X_Unrelated_Field %q, want kept (only lookalikes of the proxy's fields go)", got)
			}
		})
	}
}
