package router

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// LogBuffer is an io.Writer for a busy access log: writes land in a buffer that is written
// out when full and at least every interval, so that a request does not wait on the log
// file. Lines written in the last interval before a crash may be lost. Close flushes it.
type LogBuffer struct {
	mu   sync.Mutex
	w    *bufio.Writer
	err  error
	stop chan struct{}
	done chan struct{}
}

// NewLogBuffer returns a LogBuffer writing to w at least every interval (zero: 200 ms).
func NewLogBuffer(w io.Writer, interval time.Duration) *LogBuffer {
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	b := &LogBuffer{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go b.flushEvery(interval) // ends when Close is called
	return b
}

// Write buffers p. It returns the error of an earlier failed flush, if any.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.w.Write(p)
	b.err = err
	return n, err
}

func (b *LogBuffer) flushEvery(interval time.Duration) {
	defer close(b.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.flush()
		}
	}
}

func (b *LogBuffer) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = b.w.Flush()
	}
	return b.err
}

// Close stops the periodic flush and writes out what is buffered.
func (b *LogBuffer) Close() error {
	close(b.stop)
	<-b.done
	return b.flush()
}
