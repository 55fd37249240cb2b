package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// omemInterval is how often the output buffers of Redis's clients are
// sampled during a transfer.
const omemInterval = 20 * time.Millisecond

// outputBuffers follows the largest output buffer Redis holds for one of
// its clients (CLIENT LIST's omem): what a subscriber that falls behind
// makes Redis keep. Credit should hold it near one window whatever the
// size of a transfer.
type outputBuffers struct {
	top  int64 // bytes; written by the sampler until done
	quit chan struct{}
	done chan struct{}
}

// watchOutputBuffers samples the Redis at addr until stop; with addr ""
// it does nothing and stop reports -1.
func watchOutputBuffers(addr string) *outputBuffers {
	o := &outputBuffers{top: -1, quit: make(chan struct{}), done: make(chan struct{})}
	if addr == "" {
		close(o.done)
		return o
	}
	go o.sample(addr)
	return o
}

func (o *outputBuffers) sample(addr string) {
	defer close(o.done)
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	br := bufio.NewReader(c)
	o.top = 0
	tick := time.NewTicker(omemInterval)
	defer tick.Stop()
	for {
		c.SetDeadline(time.Now().Add(time.Second))
		list, err := clientList(c, br)
		if err != nil {
			return
		}
		o.top = max(o.top, maxOmem(list))
		select {
		case <-o.quit:
			return
		case <-tick.C:
		}
	}
}

// stop ends the sampling and returns the largest buffer seen, in bytes.
func (o *outputBuffers) stop() int64 {
	select {
	case <-o.done:
	default:
		close(o.quit)
		<-o.done
	}
	return o.top
}

// clientList sends CLIENT LIST and reads its bulk-string answer.
func clientList(w io.Writer, br *bufio.Reader) (string, error) {
	if _, err := io.WriteString(w, "CLIENT LIST\r\n"); err != nil {
		return "", err
	}
	head, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(head, "$") {
		return "", fmt.Errorf("CLIENT LIST answered %q", strings.TrimSpace(head))
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil || n < 0 {
		return "", fmt.Errorf("CLIENT LIST answered %q", strings.TrimSpace(head))
	}
	body := make([]byte, n+2)
	if _, err := io.ReadFull(br, body); err != nil {
		return "", err
	}
	return string(body[:n]), nil
}

// maxOmem is the largest omem= of a CLIENT LIST answer.
func maxOmem(list string) int64 {
	var top int64
	for line := range strings.Lines(list) {
		for field := range strings.FieldsSeq(line) {
			if v, ok := strings.CutPrefix(field, "omem="); ok {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					top = max(top, n)
				}
			}
		}
	}
	return top
}
