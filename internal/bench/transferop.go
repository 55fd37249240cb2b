package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// This file is the load generator's side of the transfers and of the
// event stream: one request each, checked to the byte.

// download GETs the spec's URL and checks that exactly the pattern
// arrived, by its length and SHA-256.
func download(ctx context.Context, s loadSpec) loadResult {
	hc, done := onceClient(s.Dial)
	defer done()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return loadResult{Fail: err.Error()}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return loadResult{Fail: reqErr(err), Elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	res := loadResult{Ops: 1, Bytes: n, Elapsed: time.Since(start)}
	switch {
	case resp.StatusCode != http.StatusOK:
		res.Fail = fmt.Sprintf("status %d", resp.StatusCode)
	case err != nil:
		res.Fail = fmt.Sprintf("cut off after %d of %d bytes: %v", n, s.Size, err)
	case n != s.Size:
		res.Fail = fmt.Sprintf("%d bytes arrived, want %d", n, s.Size)
	case hex.EncodeToString(h.Sum(nil)) != s.Sum:
		res.Fail = "the bytes that arrived differ from those sent (SHA-256)"
	}
	return res
}

// downloadBesideSlow downloads as download does while a slow visitor
// reads another body on the same tunnel; it fails if the slow one does
// not arrive whole.
func downloadBesideSlow(ctx context.Context, s loadSpec) loadResult {
	slow := make(chan string, 1)
	go func() { slow <- slowDownload(ctx, s) }()
	time.Sleep(200 * time.Millisecond) // the slow one holds its stream
	res := download(ctx, s)
	if fail := <-slow; fail != "" && res.Fail == "" {
		res.Fail = "the slow download beside it: " + fail
	}
	return res
}

// slowDownload reads s.SlowURL at s.SlowRate and checks what arrived.
func slowDownload(ctx context.Context, s loadSpec) string {
	hc, done := onceClient(s.Dial)
	defer done()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.SlowURL, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := hc.Do(req)
	if err != nil {
		return reqErr(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	start := time.Now()
	buf := make([]byte, 16<<10)
	var n int64
	for {
		if ahead := time.Duration(n)*time.Second/time.Duration(s.SlowRate) - time.Since(start); ahead > 0 {
			time.Sleep(ahead)
		}
		k, err := resp.Body.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Sprintf("cut off after %d of %d bytes: %v", n, s.SlowSize, err)
		}
	}
	if n != s.SlowSize || hex.EncodeToString(h.Sum(nil)) != s.SlowSum {
		return fmt.Sprintf("%d bytes arrived, want %d byte-exact", n, s.SlowSize)
	}
	return ""
}

// upload POSTs the pattern to the spec's URL, the backend's sink, and
// checks the length and SHA-256 the sink answers.
func upload(ctx context.Context, s loadSpec) loadResult {
	hc, done := onceClient(s.Dial)
	defer done()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, newPattern(s.Size))
	if err != nil {
		return loadResult{Fail: err.Error()}
	}
	req.ContentLength = s.Size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return loadResult{Fail: reqErr(err), Elapsed: time.Since(start)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	res := loadResult{Ops: 1, Elapsed: time.Since(start)}
	got, sum, _ := strings.Cut(string(body), " ")
	res.Bytes, _ = strconv.ParseInt(got, 10, 64)
	switch {
	case err != nil:
		res.Fail = fmt.Sprintf("read answer: %v", err)
	case resp.StatusCode != http.StatusOK:
		res.Fail = fmt.Sprintf("status %d: %.200s", resp.StatusCode, body)
	case res.Bytes != s.Size:
		res.Fail = fmt.Sprintf("the service received %d bytes, want %d", res.Bytes, s.Size)
	case sum != s.Sum:
		res.Fail = "the bytes the service received differ from those sent (SHA-256)"
	}
	return res
}

// reqErr is a failed request's error without its URL, which the report
// gives elsewhere.
func reqErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

// onceClient is a client for one request on one connection to addr, and
// what closes it.
func onceClient(addr string) (*http.Client, func()) {
	var dials atomic.Int64
	tr := visitorTransport(addr, 1, &dials)
	return &http.Client{Transport: tr}, tr.CloseIdleConnections
}

// readEvents reads the spec's event stream and measures, for each
// event, the time from the backend's flush (the wall-clock time in its
// data line) to its arrival here.
func readEvents(ctx context.Context, s loadSpec) loadResult {
	hc, done := onceClient(s.Dial)
	defer done()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return loadResult{Fail: err.Error()}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return loadResult{Fail: reqErr(err)}
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || mt != "text/event-stream" {
		return loadResult{Fail: fmt.Sprintf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))}
	}
	lat, err := eventLatencies(resp.Body)
	slices.Sort(lat)
	res := loadResult{Ops: len(lat), Total: len(lat), P50: percentile(lat, 50), P99: percentile(lat, 99)}
	switch {
	case err != nil:
		res.Fail = fmt.Sprintf("stream broken after %d of %d events: %v", len(lat), s.Events, err)
	case len(lat) != s.Events:
		res.Fail = fmt.Sprintf("%d events arrived, want %d", len(lat), s.Events)
	}
	return res
}

// eventLatencies reads data lines until the stream ends and returns how
// late each arrived.
func eventLatencies(r io.Reader) ([]time.Duration, error) {
	var lat []time.Duration
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		now := time.Now().UnixNano()
		sent, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return lat, fmt.Errorf("data line %q: %w", v, err)
		}
		lat = append(lat, time.Duration(now-sent))
	}
	return lat, sc.Err()
}
