package hop

import (
	"net/http"
	"reflect"
	"testing"
)

func TestRemove(t *testing.T) {
	tests := []struct {
		name string
		in   http.Header
		want http.Header
	}{
		{
			name: "fixed list",
			in: http.Header{
				"Connection": {"keep-alive"}, "Keep-Alive": {"timeout=5"}, "Te": {"trailers"},
				"Transfer-Encoding": {"chunked"}, "Upgrade": {"h2c"}, "Proxy-Authorization": {"x"},
				"Proxy-Connection": {"close"}, "Trailer": {"X"}, "Accept": {"*/*"},
			},
			want: http.Header{"Accept": {"*/*"}},
		},
		{
			name: "fields named in Connection",
			in:   http.Header{"Connection": {"X-Secret, x-other"}, "X-Secret": {"1"}, "X-Other": {"2"}, "X-Kept": {"3"}},
			want: http.Header{"X-Kept": {"3"}},
		},
		{
			name: "several Connection headers, first empty",
			in:   http.Header{"Connection": {"", "X-Hidden"}, "X-Hidden": {"1"}, "Set-Cookie": {"a=1", "b=2"}},
			want: http.Header{"Set-Cookie": {"a=1", "b=2"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			Remove(tt.in)
			if !reflect.DeepEqual(tt.in, tt.want) {
				t.Errorf("got %v, want %v", tt.in, tt.want)
			}
		})
	}
}

func TestIsWebSocket(t *testing.T) {
	tests := []struct {
		conn, upgrade string
		want          bool
	}{
		{"Upgrade", "websocket", true},
		{"keep-alive, Upgrade", "WebSocket", true},
		{"keep-alive", "websocket", false},
		{"Upgrade", "h2c", false},
	}
	for _, tt := range tests {
		r := &http.Request{Header: http.Header{"Connection": {tt.conn}, "Upgrade": {tt.upgrade}}}
		if got := IsWebSocket(r); got != tt.want {
			t.Errorf("Connection %q Upgrade %q: got %v, want %v", tt.conn, tt.upgrade, got, tt.want)
		}
	}
}
