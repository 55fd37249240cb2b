package proxy

import (
	"slices"
	"testing"
	"time"
)

func TestGoneNodesPick(t *testing.T) {
	tests := []struct {
		name  string
		gone  []string
		nodes []string
		want  []string // every node pick may return
	}{
		{"none gone", nil, []string{"a", "b"}, []string{"a", "b"}},
		{"one gone", []string{"a"}, []string{"a", "b", "c"}, []string{"b", "c"}},
		{"all but one gone", []string{"a", "c"}, []string{"a", "b", "c"}, []string{"b"}},
		{"all gone: still one", []string{"a", "b"}, []string{"a", "b"}, []string{"a", "b"}},
		{"only node gone", []string{"a"}, []string{"a"}, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g goneNodes
			for _, n := range tt.gone {
				if !g.mark(n) {
					t.Errorf("mark(%q): got false, want true for a node not gone yet", n)
				}
			}
			for range 100 {
				if got := g.pick(tt.nodes); !slices.Contains(tt.want, got) {
					t.Fatalf("pick(%v): got %q, want one of %v", tt.nodes, got, tt.want)
				}
			}
		})
	}
}

func TestGoneNodesClearAndExpire(t *testing.T) {
	var g goneNodes
	g.mark("a")
	if g.mark("a") {
		t.Error("mark of a node already gone: got true, want false")
	}
	g.mark("b")
	g.clear("a")
	if got := g.list(); !slices.Equal(got, []string{"b"}) {
		t.Errorf("after clear(a): got %v, want [b]", got)
	}
	g.mu.Lock()
	g.m["b"] = time.Now().Add(-time.Millisecond)
	g.mu.Unlock()
	if got := g.list(); len(got) != 0 || g.n.Load() != 0 {
		t.Errorf("after b's time ran out: got %v (count %d), want none", got, g.n.Load())
	}
	if got := g.pick([]string{"a", "b"}); got != "a" && got != "b" {
		t.Errorf("pick with none gone: got %q", got)
	}
}

func TestGoneNodesPickAllocatesNothing(t *testing.T) {
	var g goneNodes
	nodes := []string{"a", "b"}
	if allocs := testing.AllocsPerRun(100, func() { g.pick(nodes) }); allocs != 0 {
		t.Errorf("pick: got %v allocations, want 0", allocs)
	}
	g.mark("a")
	if allocs := testing.AllocsPerRun(100, func() { g.pick(nodes) }); allocs != 0 {
		t.Errorf("pick with a node gone: got %v allocations, want 0", allocs)
	}
}
