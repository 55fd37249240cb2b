package e2e

import (
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"keyhole/internal/client"
	"keyhole/internal/identity"
	"keyhole/internal/proxy"
	"keyhole/internal/redistest"
	"keyhole/messages"
	"keyhole/registry/redisreg"
)

const adminToken = "s3cret-admin-token"

// adminNode is a proxy node on srv with the admin API on its own ops
// listener.
type adminNode struct {
	*testProxy
	ops string // base URL of the ops listener
}

func startAdminNode(t *testing.T, srv *redistest.Server, prefix, name, token string) *adminNode {
	t.Helper()
	client := srv.NewClient(t)
	b, r := redisNodeOn(t, client, prefix)
	p := startProxy(t, proxy.Config{
		Node: name, Bus: b, Registry: r, Blocklist: redisreg.NewBlocklist(client, prefix, 0),
		AdminToken: token, PrivateMetrics: true,
	})
	ops := httptest.NewServer(p.OpsHandler())
	t.Cleanup(ops.Close)
	return &adminNode{testProxy: p, ops: ops.URL}
}

// admin calls the admin API with token ("" for none) and returns the
// status and body.
func admin(t *testing.T, method, url, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func tunnels(t *testing.T, n *adminNode) []proxy.TunnelInfo {
	t.Helper()
	code, body := admin(t, "GET", n.ops+"/_keyhole/admin/tunnels", adminToken)
	if code != 200 {
		t.Fatalf("list tunnels: got %d %s", code, body)
	}
	var ts []proxy.TunnelInfo
	if err := json.Unmarshal(body, &ts); err != nil {
		t.Fatalf("list tunnels: %v in %s", err, body)
	}
	return ts
}

// registerRaw registers key on n's link endpoint and returns the answer.
func registerRaw(t *testing.T, n *adminNode, key ed25519.PrivateKey) (messages.Frame, messages.Status) {
	t.Helper()
	ws, ch := rawLink(t, n.testProxy)
	reg := identity.Register(key, ch, [16]byte{9}, time.Now())
	sendRaw(t, ws, messages.TypeRegistrationRequest, reg.Append(nil))
	f := readRaw(t, ws)
	ws.Close()
	st, _ := messages.ParseStatus(f.Payload)
	return f, st
}

// TestAdminAPI runs two nodes on a real redis-server, a tunnel with a
// replica on each: the admin API refuses calls without the token, lists
// the tunnel on both nodes, and its disconnect and block take effect on
// both at once, whichever node they are sent to.
func TestAdminAPI(t *testing.T) {
	srv := redistest.Start(t)
	prefix := redistest.Prefix(t)
	a := startAdminNode(t, srv, prefix, "a", adminToken)
	b := startAdminNode(t, srv, prefix, "b", adminToken)
	be := backend(t, echo)
	key := newKey(t)
	label := identity.Label(key.Public().(ed25519.PublicKey))
	cfg := func(p *adminNode) client.Config {
		return client.Config{Proxy: p.wsURL(), Target: be.URL, Key: key, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	}
	upA, upB := runClient(t, cfg(a)), runClient(t, cfg(b))
	for _, up := range []<-chan string{upA, upB} {
		select {
		case <-up:
		case <-time.After(5 * time.Second):
			t.Fatal("a replica did not register")
		}
	}

	t.Run("refused without the token", func(t *testing.T) {
		for _, token := range []string{"", "wrong", adminToken + "x"} {
			for _, call := range [][2]string{{"GET", "/_keyhole/admin/tunnels"}, {"PUT", "/_keyhole/admin/blocked/" + label}, {"POST", "/_keyhole/admin/tunnels/" + label + "/disconnect"}} {
				if code, _ := admin(t, call[0], a.ops+call[1], token); code != http.StatusUnauthorized {
					t.Errorf("%s %s with token %q: got %d, want 401", call[0], call[1], token, code)
				}
			}
		}
		if got := a.Stats().AdminRefused.Load(); got != 9 {
			t.Errorf("AdminRefused: got %d, want 9", got)
		}
		// A node without a token has no admin API at all.
		c := startAdminNode(t, srv, prefix, "c", "")
		if code, _ := admin(t, "GET", c.ops+"/_keyhole/admin/tunnels", ""); code != http.StatusNotFound {
			t.Errorf("no --admin-token: got %d, want 404", code)
		}
		c.stop()
	})

	t.Run("list", func(t *testing.T) {
		var ts []proxy.TunnelInfo
		waitFor(t, "both nodes to be listed at either node", func() bool {
			return len(tunnels(t, a)) == 2 && len(tunnels(t, b)) == 2
		})
		ts = tunnels(t, b)
		for i, node := range []string{"a", "b"} {
			ti := ts[i]
			if ti.Label != label || ti.Node != node || ti.Links != 1 || ti.Since.IsZero() || !strings.HasPrefix(ti.Remote, "127.0.0.1:") || len(ti.Replicas) != 1 {
				t.Errorf("tunnel %d: got %+v, want label %s on node %s with one link from 127.0.0.1", i, ti, label, node)
			}
		}
		if code, body := admin(t, "GET", a.ops+"/_keyhole/admin/tunnels", adminToken); code != 200 || !strings.Contains(string(body), `"since"`) {
			t.Errorf("list at a: got %d %s", code, body)
		}
	})

	t.Run("disconnect", func(t *testing.T) {
		code, body := admin(t, "POST", a.ops+"/_keyhole/admin/tunnels/"+label+"/disconnect", adminToken)
		var res struct {
			Closed int      `json:"links_closed"`
			Nodes  []string `json:"nodes"`
		}
		json.Unmarshal(body, &res)
		if code != 200 || res.Closed != 2 || strings.Join(res.Nodes, ",") != "a,b" {
			t.Fatalf("disconnect: got %d %s, want 200 with 2 links closed on a and b", code, body)
		}
		// Both replicas lost their links and registered again.
		for name, up := range map[string]<-chan string{"a": upA, "b": upB} {
			select {
			case <-up:
			case <-time.After(5 * time.Second):
				t.Errorf("the replica on node %s did not register again after the disconnect", name)
			}
		}
	})

	t.Run("block", func(t *testing.T) {
		code, body := admin(t, "PUT", b.ops+"/_keyhole/admin/blocked/"+label, adminToken)
		if code != 200 || !strings.Contains(string(body), `"links_closed": 2`) {
			t.Fatalf("block: got %d %s, want 200 with 2 links closed", code, body)
		}
		for _, n := range []*adminNode{a, b} {
			if got := n.Stats().LinksActive.Load(); got != 0 {
				waitFor(t, "the blocked key's links to close", func() bool { return n.Stats().LinksActive.Load() == 0 })
			}
			if f, st := registerRaw(t, n, key); f.Type != messages.TypeError || st.Code != http.StatusForbidden || !strings.Contains(st.Text, "blocked") {
				t.Errorf("registering the blocked key at %s: got %v %d %q, want Error 403 saying blocked", n.Node(), f.Type, st.Code, st.Text)
			}
		}
		time.Sleep(500 * time.Millisecond) // the clients keep trying
		if ts := tunnels(t, a); len(ts) != 0 {
			t.Errorf("tunnels of a blocked key: %+v", ts)
		}
		for _, n := range []*adminNode{a, b} {
			resp, err := visitor(n.testProxy).Get("http://" + label + ".localhost/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("the blocked key's hostname at %s: got %d, want 404", n.Node(), resp.StatusCode)
			}
		}
	})

	t.Run("unblock", func(t *testing.T) {
		code, body := admin(t, "DELETE", a.ops+"/_keyhole/admin/blocked/"+label, adminToken)
		if code != 200 || !strings.Contains(string(body), `"blocked": false`) {
			t.Fatalf("unblock: got %d %s", code, body)
		}
		if f, st := registerRaw(t, b, key); f.Type != messages.TypeRegistrationResponse {
			t.Errorf("registering the unblocked key at b: got %v %d %q, want RegistrationResponse", f.Type, st.Code, st.Text)
		}
		if code, _ := admin(t, "PUT", a.ops+"/_keyhole/admin/blocked/not-a-label", adminToken); code != http.StatusBadRequest {
			t.Errorf("block of a malformed label: got %d, want 400", code)
		}
	})
}
