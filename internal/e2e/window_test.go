package e2e

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"keyhole/bus"
	"keyhole/internal/identity"
	"keyhole/internal/link"
	"keyhole/internal/proxy"
	"keyhole/messages"
	"keyhole/registry"
)

// A response body that crosses nodes gets a wider window once its visitor
// has taken all that came: the first Credit from the visitor's node grants
// what the visitor took and messages.MaxWindow − messages.InitialWindow
// more. On the client's own node the Credit grants what was taken, no
// more. The client is driven by hand, so the frames it sends and the
// Credit it gets back are exact.
func TestStreamWindowWidensAcrossNodes(t *testing.T) {
	const chunks = 4 // 4 × 64 KiB reach a quarter window
	taken := chunks * link.Cost(messages.MaxChunk)
	for _, tc := range []struct {
		name string
		node int // where the visitor enters; the client is on node 0
		want int64
	}{
		{"same node", 0, taken},
		{"across nodes", 1, taken + messages.MaxWindow - messages.InitialWindow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, r := bus.NewMemory(), registry.NewMemory()
			var ps []*testProxy
			for _, node := range []string{"a", "b"} {
				ps = append(ps, startProxy(t, proxy.Config{Node: node, Bus: b, Registry: r, MaxBody: proxy.NoCap}))
			}
			ws, url := revision2Link(t, ps[0])

			// The visitor reads as fast as the body comes.
			got := make(chan error, 1)
			go func() {
				req, _ := http.NewRequest("GET", url+"/big", nil)
				resp, err := visitor(ps[tc.node]).Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				got <- err
			}()
			req := readRaw(t, ws)
			if req.Type != messages.TypeHTTPRequest {
				t.Fatalf("got %v, want HTTPRequest", req.Type)
			}
			head, err := messages.AppendResponseHead(nil, &messages.ResponseHead{Status: 200, ContentLength: 8 << 20, Header: http.Header{}})
			if err != nil {
				t.Fatal(err)
			}
			writeRaw(t, ws, messages.Frame{Type: messages.TypeHTTPResponse, ID: req.ID, Payload: head}.Append(nil))
			chunk := make([]byte, messages.MaxChunk)
			for range chunks {
				writeRaw(t, ws, messages.Frame{Type: messages.TypeData, ID: req.ID, Payload: chunk}.Append(nil))
			}
			for {
				f := readRaw(t, ws)
				if f.Type != messages.TypeCredit {
					continue // a Ping
				}
				n, err := messages.ParseCredit(f.Payload)
				if err != nil || f.ID != req.ID {
					t.Fatalf("Credit %v for stream %v, want one for %v", err, f.ID, req.ID)
				}
				if int64(n) != tc.want {
					t.Errorf("first Credit grants %d, want %d", n, tc.want)
				}
				break
			}
			ws.Close() // the visitor's body is cut short
			select {
			case err := <-got:
				if err == nil {
					t.Error("the visitor got a whole body from a client that left half way")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the visitor was not told the body was cut")
			}
		})
	}
}

// revision2Link registers a fresh key over a hand-driven link of revision
// 2, where HTTP bodies travel with credit, and returns it with the
// tunnel's URL.
func revision2Link(t *testing.T, p *testProxy) (*websocket.Conn, string) {
	t.Helper()
	ws, ch := rawLinkWith(t, p, http.Header{messages.RevisionHeader: {"2"}})
	reg := identity.Register(newKey(t), ch, [16]byte{}, time.Now())
	sendRaw(t, ws, messages.TypeRegistrationRequest, reg.Append(nil))
	f := readRaw(t, ws)
	if f.Type != messages.TypeRegistrationResponse {
		t.Fatalf("registration: got %v, want RegistrationResponse", f.Type)
	}
	rr, err := messages.ParseRegistrationResponse(f.Payload)
	if err != nil || rr.Revision != 2 {
		t.Fatalf("registration response %+v (%v), want revision 2", rr, err)
	}
	return ws, rr.URL
}
