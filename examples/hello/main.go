// Command hello publishes an http.Handler through a keyhole proxy with
// the keyhole/tunnel package and no listening port: GET / answers
// "hello from keyhole", and /ws echoes every WebSocket message. The first
// line on stdout is the public URL.
//
//	go run ./examples/hello --proxy ws://127.0.0.1:8080 --key hello.key
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/gorilla/websocket"

	"keyhole/tunnel"
)

func main() {
	proxy := flag.String("proxy", "ws://127.0.0.1:8080", "proxy `URL`")
	keyPath := flag.String("key", "hello.key", "key `file`, created if missing")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	key, _, err := tunnel.LoadKey(*keyPath)
	if err != nil {
		log.Error("key", "err", err)
		os.Exit(2)
	}
	t, err := tunnel.New(tunnel.Config{
		Proxy:   *proxy,
		Key:     key,
		Handler: handler(),
		Logger:  log,
	})
	if err != nil {
		log.Error("tunnel", "err", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		select {
		case <-t.Ready():
			fmt.Println(t.URL())
		case <-ctx.Done():
		}
	}()
	if err := t.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("tunnel", "err", err)
		os.Exit(1)
	}
}

// upgrader takes WebSockets from any origin: the echo holds nothing of
// the visitor's.
var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from keyhole")
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade has answered
		}
		defer ws.Close()
		for {
			typ, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if err := ws.WriteMessage(typ, msg); err != nil {
				return
			}
		}
	})
	return mux
}
