package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// testBackend serves the backend's handlers on a real loopback server.
func testBackend(t *testing.T) *httptest.Server {
	t.Helper()
	b := &backend{sockets: make(map[*websocket.Conn]struct{})}
	srv := httptest.NewServer(b.mux())
	t.Cleanup(srv.Close)
	return srv
}

func TestTransfersArriveByteExact(t *testing.T) {
	srv := testBackend(t)
	const size = 3<<20 + 1
	base := loadSpec{Dial: srv.Listener.Addr().String(), Size: size, Sum: patternSum(size), Timeout: 10 * time.Second}
	for _, tc := range []struct {
		name string
		op   func(context.Context, loadSpec) loadResult
		url  string
	}{
		{"download", download, srv.URL + blobPath + "?n=" + strconv.Itoa(size)},
		{"upload", upload, srv.URL + sinkPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			s.URL = tc.url
			res := tc.op(t.Context(), s)
			if res.Fail != "" || res.Bytes != size {
				t.Errorf("got fail %q and %d bytes, want no fail and %d bytes", res.Fail, res.Bytes, size)
			}
		})
	}
}

func TestTransferFailures(t *testing.T) {
	srv := testBackend(t)
	const size = 1 << 20
	for _, tc := range []struct {
		name string
		op   func(context.Context, loadSpec) loadResult
		url  string
		size int64
		sum  string
		want string
	}{
		{"short download", download, srv.URL + blobPath + "?n=1000", size, patternSum(size), "1000 bytes arrived"},
		{"other bytes", download, srv.URL + blobPath + "?n=" + strconv.Itoa(size), size, patternSum(size - 1), "differ"},
		{"refused download", download, srv.URL + "/nothing", size, patternSum(size), "status 404"},
		{"other upload", upload, srv.URL + sinkPath, size, patternSum(size - 1), "differ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := loadSpec{URL: tc.url, Dial: srv.Listener.Addr().String(), Size: tc.size, Sum: tc.sum, Timeout: 10 * time.Second}
			if res := tc.op(t.Context(), s); !strings.Contains(res.Fail, tc.want) {
				t.Errorf("got fail %q, want one saying %q", res.Fail, tc.want)
			}
		})
	}
}

// A transfer that stalls ends at its timeout with a failure.
func TestTransferTimesOut(t *testing.T) {
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write(make([]byte, 10))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer stall.Close()
	run := loadKinds["download"]
	start := time.Now()
	res, err := run(t.Context(), loadSpec{URL: stall.URL, Dial: stall.Listener.Addr().String(), Size: 1000, Timeout: 300 * time.Millisecond}, nil)
	if err != nil || !strings.Contains(res.Fail, "not done within 300ms") || time.Since(start) > 5*time.Second {
		t.Errorf("got %v, fail %q after %v, want a timeout failure after about 300ms", err, res.Fail, time.Since(start))
	}
}

func TestEventsArriveWithTheirLatency(t *testing.T) {
	srv := testBackend(t)
	const n = 20
	res := readEvents(t.Context(), loadSpec{URL: srv.URL + eventPath + "?n=20&gap=5ms", Dial: srv.Listener.Addr().String(),
		Events: n, Timeout: 10 * time.Second})
	if res.Fail != "" || res.Ops != n {
		t.Fatalf("got fail %q and %d events, want %d events", res.Fail, res.Ops, n)
	}
	if res.P50 <= 0 || res.P99 < res.P50 || res.P99 > time.Second {
		t.Errorf("got p50 %v, p99 %v, want 0 < p50 <= p99 < 1s on loopback", res.P50, res.P99)
	}
}
