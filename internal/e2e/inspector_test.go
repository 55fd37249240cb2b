package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/internal/client"
	"keyhole/internal/inspect"
	"keyhole/internal/proxy"
)

// inspectedBy routes a test client's traffic through an inspector, as
// cmd/client does.
func inspectedBy(in *inspect.Inspector, name string) clientOpt {
	return func(cfg *client.Config) {
		cfg.Transport = in.Transport(name, client.NewTransport())
		cfg.WebSocketTap = in.WebSocketTap(name)
	}
}

type inspectedMessage struct {
	FromService bool `json:"from_service"`
	Text        bool `json:"text"`
	Body        struct {
		Size   int64  `json:"size"`
		Base64 []byte `json:"base64"`
	} `json:"body"`
}

// TestInspectorRecordsWebSocketMessages: the messages of a WebSocket
// through a real proxy and client are listed, both ways, in order, with
// their types, while the socket is open and after it closed.
func TestInspectorRecordsWebSocketMessages(t *testing.T) {
	in := inspect.New(inspect.Options{})
	api := httptest.NewServer(in.Handler())
	t.Cleanup(api.Close)
	p := startProxy(t, proxy.Config{})
	e := startWSEcho(t)
	c := startClient(t, p, e.srv.URL, newKey(t), inspectedBy(in, "chat"))
	ws, _ := wsDial(t, p, c.url, nil, "chat.v1")
	sent := []struct {
		typ  int
		data string
	}{{websocket.TextMessage, "héllo"}, {websocket.BinaryMessage, "\x00\xff"}, {websocket.TextMessage, strings.Repeat("z", 40000)}}
	for _, m := range sent {
		if err := ws.WriteMessage(m.typ, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := ws.ReadMessage(); err != nil || string(got) != m.data {
			t.Fatalf("echo: got %d bytes, %v; want %d", len(got), err, len(m.data))
		}
	}

	var list []struct {
		ID           uint64 `json:"id"`
		Tunnel       string `json:"tunnel"`
		Status       int    `json:"status"`
		WebSocket    bool   `json:"websocket"`
		MessageCount int    `json:"message_count"`
		Done         bool   `json:"done"`
	}
	getJSON(t, api.URL+"/api/requests", &list)
	if len(list) != 1 || !list[0].WebSocket || list[0].Status != 101 || list[0].Tunnel != "chat" || list[0].MessageCount != 6 || list[0].Done {
		t.Fatalf("got %+v, want one open websocket of tunnel chat, status 101, with 6 messages", list)
	}
	var d struct {
		Messages []inspectedMessage `json:"messages"`
	}
	getJSON(t, api.URL+"/api/requests/1", &d)
	if len(d.Messages) != 6 {
		t.Fatalf("got %d messages, want 6", len(d.Messages))
	}
	for i, m := range d.Messages {
		s := sent[i/2]
		if m.FromService != (i%2 == 1) || m.Text != (s.typ == websocket.TextMessage) || m.Body.Size != int64(len(s.data)) || string(m.Body.Base64) != s.data {
			t.Errorf("message %d: got from service %v, text %v, %d bytes (%d kept); want %v, %v, %d",
				i, m.FromService, m.Text, m.Body.Size, len(m.Body.Base64), i%2 == 1, s.typ == websocket.TextMessage, len(s.data))
		}
	}

	ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
	ws.ReadMessage()
	waitFor(t, "the websocket recorded as closed", func() bool {
		getJSON(t, api.URL+"/api/requests", &list)
		return len(list) == 1 && list[0].Done
	})
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}
