package router

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// errChunk is a malformed chunked body: from a client it is a 400.
var errChunk = errors.New("malformed chunked body")

const (
	maxTrailerBytes = 16 << 10
	copyBufSize     = 32 << 10
)

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// bodyReader reads one message body from br, as framed by mode, and stops at its end.
// Chunked bodies are decoded strictly: hexadecimal sizes of at most 15 digits, CRLF after
// every line and every chunk, extensions without control bytes; trailers are checked and
// dropped.
type bodyReader struct {
	br   *bufio.Reader
	mode bodyMode
	n    int64 // bytes left in the body (bodyLength) or in the current chunk
	crlf bool  // the current chunk's data was read; its CRLF comes next
	done bool
}

// next returns the next piece of the body and io.EOF after the last. The piece is valid
// until the next call. If big is not nil and a read would bypass br's buffer anyway, it
// reads into big.
func (b *bodyReader) next(big []byte) ([]byte, error) {
	if b.done || b.mode == bodyNone {
		return nil, io.EOF
	}
	if b.mode == bodyChunked && b.n == 0 {
		if err := b.nextChunk(); err != nil {
			return nil, err
		}
		if b.done {
			return nil, io.EOF
		}
	}
	if b.mode == bodyLength && b.n == 0 {
		b.done = true
		return nil, io.EOF
	}
	if b.br.Buffered() == 0 && big != nil && (b.mode == bodyEOF || b.n >= int64(len(big))) {
		if b.mode != bodyEOF {
			big = big[:min(int64(len(big)), b.n)]
		}
		k, err := b.br.Read(big)
		return b.took(big[:k], err)
	}
	if _, err := b.br.Peek(1); err != nil {
		return b.took(nil, err)
	}
	k := b.br.Buffered()
	if b.mode != bodyEOF {
		k = int(min(int64(k), b.n))
	}
	p, _ := b.br.Peek(k)
	b.br.Discard(k)
	return b.took(p, nil)
}

// complete reports whether the whole body was read, when that is known without reading.
func (b *bodyReader) complete() bool {
	return b.done || b.mode == bodyNone || b.mode == bodyLength && b.n == 0
}

// took accounts for p, just read with err.
func (b *bodyReader) took(p []byte, err error) ([]byte, error) {
	if b.mode == bodyEOF {
		if err == io.EOF {
			b.done = true
		}
		return p, err
	}
	b.n -= int64(len(p))
	if b.mode == bodyChunked && b.n == 0 {
		b.crlf = true
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if len(p) > 0 {
		err = nil
	}
	return p, err
}

// nextChunk reads the CRLF after the previous chunk and the next chunk's size line; after
// the last chunk it reads the trailer and sets done.
func (b *bodyReader) nextChunk() error {
	if b.crlf {
		two, err := b.br.Peek(2)
		if err != nil {
			return unexpected(err)
		}
		if two[0] != '\r' || two[1] != '\n' {
			return errChunk
		}
		b.br.Discard(2)
		b.crlf = false
	}
	line, err := b.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return errChunk
	}
	if err != nil {
		return unexpected(err)
	}
	n, ok := parseChunkLine(line)
	if !ok {
		return errChunk
	}
	if n > 0 {
		b.n = n
		return nil
	}
	for total := 0; ; { // trailer fields, then an empty line
		line, err := b.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return errChunk
		}
		if err != nil {
			return unexpected(err)
		}
		total += len(line)
		if len(line) < 2 || line[len(line)-2] != '\r' || total > maxTrailerBytes {
			return errChunk
		}
		if len(line) == 2 {
			b.done = true
			return nil
		}
		if _, ok := parseField(line[:len(line)-2]); !ok {
			return errChunk
		}
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseChunkLine parses "1*HEXDIG [BWS ; extension] CRLF" and returns the size.
func parseChunkLine(line []byte) (int64, bool) {
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, false
	}
	line = line[:len(line)-2]
	var n int64
	i := 0
	for ; i < len(line); i++ {
		d := unhex(line[i])
		if d < 0 {
			break
		}
		if i == 15 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	if i == 0 {
		return 0, false
	}
	ext := line[i:]
	if len(ext) == 0 {
		return n, true
	}
	for len(ext) > 0 && (ext[0] == ' ' || ext[0] == '\t') {
		ext = ext[1:]
	}
	if len(ext) == 0 || ext[0] != ';' || !isFieldValue(ext) {
		return 0, false
	}
	return n, true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// deadline is one direction of a connection's deadline, moved forward lazily: only when
// less than half of timeout is left, so that a stream of reads or writes costs few calls.
// Its owner moves it; another goroutine may stop it, which puts it in the past for good.
type deadline struct {
	nc      net.Conn
	timeout time.Duration
	at      time.Time
	write   bool
	stop    atomic.Bool
}

func (d *deadline) set(t time.Time) {
	d.at = t
	d.apply(t)
	if d.stop.Load() { // stopped while being moved: stopping wins
		d.apply(aLongTimeAgo)
	}
}

func (d *deadline) apply(t time.Time) {
	if d.write {
		d.nc.SetWriteDeadline(t)
	} else {
		d.nc.SetReadDeadline(t)
	}
}

func (d *deadline) extend() { d.extendAt(time.Now()) }

func (d *deadline) extendAt(now time.Time) {
	if d.at.Sub(now) < d.timeout/2 {
		d.set(now.Add(d.timeout))
	}
}

// abort wakes the owner from a wait in this direction, now and in the future.
func (d *deadline) abort() {
	d.stop.Store(true)
	d.apply(aLongTimeAgo)
}

// relay copies src's body to dst, as chunks if chunk is set (without the last chunk),
// flushing dst whenever src must wait for bytes, so that slow bodies stream. It returns
// the body bytes copied and the first error, with srcFailed set if reading failed.
func relay(dst *bufio.Writer, wd *deadline, src *bodyReader, rd *deadline, chunk bool) (n int64, err error, srcFailed bool) {
	var big *[]byte
	defer func() {
		if big != nil {
			copyBufs.Put(big)
		}
	}()
	for !src.complete() {
		var bigBuf []byte
		if src.br.Buffered() == 0 {
			if dst.Buffered() > 0 {
				wd.extend()
				if err := dst.Flush(); err != nil {
					return n, err, false
				}
			}
			rd.extend()
			if big == nil && (src.mode == bodyEOF || src.n >= copyBufSize || src.mode == bodyChunked) {
				big = copyBufs.Get().(*[]byte)
			}
			if big != nil {
				bigBuf = *big
			}
		}
		p, err := src.next(bigBuf)
		if len(p) > 0 {
			if dst.Available() < len(p)+32 {
				wd.extend()
			}
			if chunk {
				h := strconv.AppendInt(dst.AvailableBuffer(), int64(len(p)), 16)
				dst.Write(append(h, '\r', '\n'))
			}
			if _, werr := dst.Write(p); werr != nil {
				return n, werr, false
			}
			if chunk {
				dst.WriteString("\r\n")
			}
			n += int64(len(p))
		}
		if err == io.EOF {
			return n, nil, false
		}
		if err != nil {
			return n, err, true
		}
	}
	return n, nil, false
}
