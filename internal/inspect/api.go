package inspect

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"time"
)

//go:embed static
var static embed.FS

// Handler serves the page at / and the JSON API under /api/.
func (in *Inspector) Handler() http.Handler {
	mux := http.NewServeMux()
	files, _ := fs.Sub(static, "static")
	mux.Handle("GET /", http.FileServerFS(files))
	mux.HandleFunc("GET /api/requests", in.listRequests)
	mux.HandleFunc("GET /api/requests/{id}", in.showRequest)
	mux.HandleFunc("POST /api/requests/{id}/replay", in.replayRequest)
	mux.HandleFunc("GET /api/tunnels", in.listTunnels)
	return guard(mux)
}

// listRequests answers the newest requests first; ?limit=N keeps N. It
// carries an ETag that changes with anything recorded, so a page that
// polls with If-None-Match gets 304 while nothing happens. With
// ?wait=SECONDS (at most maxWait) and an If-None-Match that is still
// current, it first waits that long for a change: the page then shows a
// request as soon as it is recorded, without polling.
func (in *Inspector) listRequests(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	ver := in.version.Load()
	if secs, err := strconv.ParseFloat(r.URL.Query().Get("wait"), 64); err == nil && secs > 0 &&
		r.Header.Get("If-None-Match") == etagOf(ver) {
		wait := min(time.Duration(secs*float64(time.Second)), maxWait)
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		in.awaitChange(ver, ctx.Done())
		cancel()
		ver = in.version.Load()
	}
	tag := etagOf(ver)
	w.Header().Set("ETag", tag)
	w.Header().Set("Cache-Control", "no-cache")
	if r.Header.Get("If-None-Match") == tag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeJSON(w, http.StatusOK, in.newestSummaries(limit))
}

// maxWait bounds how long listRequests waits for a change.
const maxWait = 25 * time.Second

// etagOf is the list's ETag at version ver.
func etagOf(ver uint64) string { return `"` + strconv.FormatUint(ver, 10) + `"` }

func (in *Inspector) showRequest(w http.ResponseWriter, r *http.Request) {
	e := in.entryOf(w, r)
	if e == nil {
		return
	}
	writeJSON(w, http.StatusOK, e.detail())
}

// replayRequest replays a request, with the edits in its JSON body if it
// has one, and answers the replay, recorded as a new request.
func (in *Inspector) replayRequest(w http.ResponseWriter, r *http.Request) {
	e := in.entryOf(w, r)
	if e == nil {
		return
	}
	var edits *Edits
	b, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if len(b) > 0 {
		edits = new(Edits)
		if err := json.Unmarshal(b, edits); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
	}
	re, err := in.Replay(r.Context(), e.id, edits)
	if err != nil {
		writeError(w, replayStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, re.detail())
}

// replayStatus is the API's status for a failed replay.
func replayStatus(err error) int {
	switch {
	case errors.Is(err, errUnknown):
		return http.StatusNotFound
	case errors.Is(err, errBadEdit):
		return http.StatusBadRequest
	case errors.Is(err, errService):
		return http.StatusBadGateway
	default:
		return http.StatusConflict
	}
}

func (in *Inspector) listTunnels(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, in.tunnelViews())
}

// entryOf is the request named in the path, or nil once it answered 404.
func (in *Inspector) entryOf(w http.ResponseWriter, r *http.Request) *entry {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	e := in.ring.get(id)
	if err != nil || e == nil {
		writeError(w, http.StatusNotFound, errUnknown)
		return nil
	}
	return e
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
