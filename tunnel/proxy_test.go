package tunnel_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"

	"keyhole/internal/proxy"
)

// testProxy is a keyhole proxy on a loopback port, for the examples.
type testProxy struct {
	srv  *proxy.Server
	http *httptest.Server
	addr string
}

func startProxy() *testProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	srv, err := proxy.New(proxy.Config{PublicPort: port})
	if err != nil {
		panic(err)
	}
	hs := httptest.NewUnstartedServer(srv)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	return &testProxy{srv: srv, http: hs, addr: ln.Addr().String()}
}

func (p *testProxy) URL() string { return "ws://" + p.addr }

// Client reaches the proxy whatever host a URL names, as a browser that
// resolves *.localhost to loopback does.
func (p *testProxy) Client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, p.addr)
		},
	}}
}

func (p *testProxy) Close() {
	p.http.CloseClientConnections()
	p.http.Close()
	p.srv.Close()
}
