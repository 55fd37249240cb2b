package tunnel_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"

	"keyhole/tunnel"
)

// Publish a handler with no listening port, visit it through the proxy,
// then stop the tunnel.
func Example() {
	p := startProxy() // a keyhole proxy; in production e.g. wss://tunnel.example.com
	defer p.Close()
	_, key, _ := ed25519.GenerateKey(nil) // or tunnel.LoadKey("hello.key"), for the same hostname every time

	t, err := tunnel.New(tunnel.Config{
		Proxy: p.URL(),
		Key:   key,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello from keyhole: %s %s\n", r.Method, r.URL.Path)
		}),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- t.Run(ctx) }()

	<-t.Ready() // t.URL() is http://<label>.localhost:<port>
	resp, err := p.Client().Get(t.URL() + "/greeting")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(resp.Status, ": ", string(body))

	cancel()
	fmt.Println("Run:", <-done)
	// Output:
	// 200 OK: hello from keyhole: GET /greeting
	// Run: context canceled
}
