package e2e

import (
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Through the real proxy and client: the ws package sends valid text
// fragmented inside a character, which is echoed intact, then text that
// is not UTF-8, which never reaches the service: the visitor's socket is
// closed with 1007 and so is the service's.
func TestWebSocketTextMustBeUTF8(t *testing.T) {
	p, e, c := wsSetup(t)
	out := runNodeWS(t, "wsutf8.js", c.url+"/utf8", p.addr)
	var seen struct {
		Error string
		Echo  struct {
			Binary bool
			Hex    string
		}
		Close struct{ Code int }
	}
	if err := json.Unmarshal(out, &seen); err != nil || seen.Error != "" {
		t.Fatalf("node printed %s (%v)", out, err)
	}
	if want := hex.EncodeToString([]byte("κόσμε ✓")); seen.Echo.Binary || seen.Echo.Hex != want {
		t.Errorf("echo of fragmented text: got binary=%v %s, want text %s", seen.Echo.Binary, seen.Echo.Hex, want)
	}
	if seen.Close.Code != websocket.CloseInvalidFramePayloadData {
		t.Errorf("visitor: got close %d, want 1007", seen.Close.Code)
	}
	select {
	case ce := <-e.closed:
		if ce.Code != websocket.CloseInvalidFramePayloadData {
			t.Errorf("service: got close %d %q, want 1007", ce.Code, ce.Text)
		}
	case <-time.After(5 * time.Second):
		t.Error("service saw no close")
	}
}
