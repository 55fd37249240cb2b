package e2e

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"keyhole/internal/proxy"
)

// cookiePage is tenant A's page: the service has sent a Set-Cookie for
// the parent domain with it, and its script sets one more with
// document.cookie. It reports what A's own requests carry, then goes to
// tenant B, whose service reports what B receives.
const cookiePage = `<!doctype html>
<html><head><title>keyhole cookie test</title></head><body>
<script>
document.cookie = 'script=1; domain=tunnel.localhost; path=/';
fetch('/seen-a').then(() => { location.href = 'B_URL/seen-b'; });
</script></body></html>`

// What --host-only-cookies can and cannot do, in a real browser: a
// Set-Cookie for the parent domain is kept to the tenant that sent it, so
// a sibling tenant does not get it; a cookie that the tenant's own script
// sets for the parent domain passes the proxy unseen and does reach the
// sibling. Only the Public Suffix List, or a registrable domain of its
// own, keeps browsers from sharing cookies between tenants.
func TestBrowserHostOnlyCookiesLimits(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is missing: apt-get install chromium (CI does): %v", err)
	}
	seen := make(chan string, 4)
	var bURL atomic.Value
	be := backend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Add("Set-Cookie", "header=1; Domain=tunnel.localhost; Path=/")
			io.WriteString(w, strings.Replace(cookiePage, "B_URL", bURL.Load().(string), 1))
		case "/seen-a", "/seen-b":
			seen <- r.URL.Path + " " + r.Header.Get("Cookie")
			io.WriteString(w, "ok")
		}
	})
	p := startProxy(t, proxy.Config{Domain: "tunnel.localhost", HostOnlyCookies: true})
	a := startClient(t, p, be.URL, newKey(t))
	b := startClient(t, p, be.URL, newKey(t))
	bURL.Store(b.url)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out strings.Builder
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
		"--user-data-dir="+t.TempDir(), a.url+"/")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	defer cmd.Wait()
	defer cancel()
	got := map[string]string{}
	for len(got) < 2 {
		select {
		case s := <-seen:
			path, cookies, _ := strings.Cut(s, " ")
			got[path] = cookies
		case <-ctx.Done():
			cancel()
			cmd.Wait()
			t.Fatalf("the pages reported %v; chromium printed:\n%s", got, out.String())
		}
	}
	has := func(cookies, c string) bool {
		for f := range strings.SplitSeq(cookies, ";") {
			if strings.TrimSpace(f) == c {
				return true
			}
		}
		return false
	}
	if a := got["/seen-a"]; !has(a, "header=1") || !has(a, "script=1") {
		t.Errorf("tenant A sent Cookie %q, want both its cookies, header=1 and script=1", a)
	}
	if b := got["/seen-b"]; has(b, "header=1") {
		t.Errorf("tenant B received Cookie %q: the Set-Cookie for the parent domain reached a sibling", b)
	}
	if b := got["/seen-b"]; !has(b, "script=1") {
		t.Errorf("tenant B sent Cookie %q, want script=1: document.cookie for the parent domain reaches siblings, "+
			"as the docs say; if browsers stopped sharing it, the docs should say so", b)
	}
	if n := p.Stats().CookieDomains.Load(); n != 1 {
		t.Errorf("cookie domains removed: %d, want 1", n)
	}
}
