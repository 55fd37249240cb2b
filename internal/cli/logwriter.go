package cli

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// LogWriter buffers log lines and writes them out at least every
// interval, so a busy tunnel's one line per request costs a memory copy,
// not a system call each. Close flushes what is left.
type LogWriter struct {
	mu   sync.Mutex // protects w
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

// NewLogWriter starts a LogWriter on w.
func NewLogWriter(w io.Writer, interval time.Duration) *LogWriter {
	l := &LogWriter{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go l.loop(interval)
	return l
}

func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *LogWriter) loop(interval time.Duration) {
	defer close(l.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.Flush()
		case <-l.stop:
			l.Flush()
			return
		}
	}
}

// Flush writes out what is buffered.
func (l *LogWriter) Flush() {
	l.mu.Lock()
	l.w.Flush()
	l.mu.Unlock()
}

// Close flushes and stops the writer.
func (l *LogWriter) Close() error {
	close(l.stop)
	<-l.done
	return nil
}
