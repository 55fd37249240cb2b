package proxy

import (
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"keyhole/internal/identity"
)

// AdminPath is where OpsHandler serves the admin API when
// Config.AdminToken is set:
//
//	GET    /_keyhole/admin/tunnels                    every node's tunnels, a JSON array of TunnelInfo
//	POST   /_keyhole/admin/tunnels/{label}/disconnect close the label's links on every node
//	PUT    /_keyhole/admin/blocked/{label}            block the key: links closed, registrations refused (403)
//	DELETE /_keyhole/admin/blocked/{label}            unblock it
//
// Every call needs "Authorization: Bearer <token>"; without the right
// token it is answered 401. Nodes that did not answer in time are named
// in the Keyhole-Missing-Nodes header (and "missing" in the JSON).
const AdminPath = "/_keyhole/admin"

func (s *Server) adminRoutes(r chi.Router) {
	r.Use(s.adminAuth)
	r.Get("/tunnels", s.adminTunnels)
	r.Post("/tunnels/{label}/disconnect", s.adminDisconnect)
	r.Put("/blocked/{label}", s.adminBlock)
	r.Delete("/blocked/{label}", s.adminUnblock)
}

// adminAuth lets through only calls with the admin token, compared in
// constant time (of hashes, so the token's length does not show either).
func (s *Server) adminAuth(next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(s.cfg.AdminToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		got := sha256.Sum256([]byte(token))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			s.stats.AdminRefused.Add(1)
			w.Header().Set("WWW-Authenticate", `Bearer realm="keyhole admin"`)
			adminJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong admin token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) adminTunnels(w http.ResponseWriter, r *http.Request) {
	res := s.clusterOp(r.Context(), opList, "")
	tunnels := []TunnelInfo{}
	for _, a := range res.answers {
		tunnels = append(tunnels, a.Tunnels...)
	}
	slices.SortFunc(tunnels, func(a, b TunnelInfo) int {
		return cmp.Or(cmp.Compare(a.Label, b.Label), cmp.Compare(a.Node, b.Node))
	})
	missing(w, res)
	adminJSON(w, http.StatusOK, tunnels)
}

// adminResult is the answer to a call that changes something.
type adminResult struct {
	Label   string   `json:"label"`
	Blocked *bool    `json:"blocked,omitempty"`
	Closed  int      `json:"links_closed"`
	Nodes   []string `json:"nodes"`   // the nodes that answered
	Missing []string `json:"missing"` // the nodes that did not
}

func (s *Server) adminDisconnect(w http.ResponseWriter, r *http.Request) {
	label, ok := adminLabel(w, r)
	if !ok {
		return
	}
	res := s.clusterOp(r.Context(), opDisconnect, label)
	s.log.Info("admin: tunnel disconnected", "tunnel", label, "links_closed", res.closed(), "missing", res.missing)
	missing(w, res)
	adminJSON(w, http.StatusOK, adminResult{Label: label, Closed: res.closed(), Nodes: res.nodes(), Missing: res.missing})
}

func (s *Server) adminBlock(w http.ResponseWriter, r *http.Request) {
	s.adminSetBlocked(w, r, true)
}

func (s *Server) adminUnblock(w http.ResponseWriter, r *http.Request) {
	s.adminSetBlocked(w, r, false)
}

// adminSetBlocked records the block in the blocklist first, so every
// node refuses the key's registrations from then on, then tells every
// node, which closes the key's links.
func (s *Server) adminSetBlocked(w http.ResponseWriter, r *http.Request, blocked bool) {
	label, ok := adminLabel(w, r)
	if !ok {
		return
	}
	op, set := opUnblock, s.cfg.Blocklist.Unblock
	if blocked {
		op, set = opBlock, s.cfg.Blocklist.Block
	}
	if err := set(r.Context(), label); err != nil {
		s.log.Error("admin: blocklist not updated", "tunnel", label, "op", op, "err", err)
		adminJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the blocklist could not be updated; see the proxy's log"})
		return
	}
	res := s.clusterOp(r.Context(), op, label)
	s.log.Info("admin: key "+op+"ed", "tunnel", label, "links_closed", res.closed(), "missing", res.missing)
	missing(w, res)
	adminJSON(w, http.StatusOK, adminResult{Label: label, Blocked: &blocked, Closed: res.closed(), Nodes: res.nodes(), Missing: res.missing})
}

// adminLabel reads the {label} of a call: a key's label, or its hostname.
func adminLabel(w http.ResponseWriter, r *http.Request) (string, bool) {
	label, _, _ := strings.Cut(strings.ToLower(chi.URLParam(r, "label")), ".")
	if !identity.ValidLabel(label) {
		adminJSON(w, http.StatusBadRequest, map[string]string{"error": "not a key's label: want 52 characters of a-z and 2-7"})
		return "", false
	}
	return label, true
}

func missing(w http.ResponseWriter, res clusterResult) {
	if len(res.missing) > 0 {
		w.Header().Set("Keyhole-Missing-Nodes", strings.Join(res.missing, ","))
	}
}

func adminJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
