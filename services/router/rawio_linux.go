package router

import (
	"bufio"
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawIO reads and writes a TCP connection with raw system calls on its non-blocking socket,
// waiting in the runtime's network poller exactly as net does, but without declaring a
// blocking system call. On loopback a write runs the receiver's side of TCP too and can
// take tens of microseconds; declared as blocking, that is long enough for the scheduler's
// monitor to hand the goroutine's processor to another thread, and the wakeups that follow
// cost more than the proxying itself. Deadlines and Close work as on the net.Conn. One
// goroutine may read while another writes.
type rawIO struct {
	rc         syscall.RawConn
	rd, wr, aw rawOp
	await      bool // the next Write is a writeAwait (see flushAwait)
}

// rawOp is the state of one direction's call, kept here so that the functions handed to
// the RawConn are made once per connection, not once per call.
type rawOp struct {
	p     []byte
	n     int
	errno syscall.Errno
	fn    func(uintptr) bool
	wrote bool // writeAwait: the write is done, now the wait
}

// newRawIO returns an io.ReadWriter for nc, or nc itself if it has no file descriptor.
func newRawIO(nc net.Conn) io.ReadWriter {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nc
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nc
	}
	x := &rawIO{rc: rc}
	x.rd.fn, x.wr.fn, x.aw.fn = x.rd.read, x.wr.write, x.aw.writeAwait
	return x
}

func (o *rawOp) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(o.p))), uintptr(len(o.p)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait in the poller
		}
		o.n, o.errno = int(n), e
		return true
	}
}

func (o *rawOp) write(fd uintptr) bool {
	for len(o.p) > 0 {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(o.p))), uintptr(len(o.p)))
		switch e {
		case 0:
			o.n += int(n)
			o.p = o.p[n:]
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // wait in the poller
		default:
			o.errno = e
			return true
		}
	}
	return true
}

func (x *rawIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	o := &x.rd
	o.p, o.n, o.errno = p, 0, 0
	err := x.rc.Read(o.fn)
	o.p = nil
	switch {
	case err != nil:
		return 0, err
	case o.errno != 0:
		return 0, o.errno
	case o.n == 0:
		return 0, io.EOF
	}
	return o.n, nil
}

func (x *rawIO) Write(p []byte) (int, error) {
	if x.await {
		x.await = false
		return writeAwait(x, p)
	}
	o := &x.wr
	o.p, o.n, o.errno = p, 0, 0
	err := x.rc.Write(o.fn)
	o.p = nil
	if err == nil && o.errno != 0 {
		err = o.errno
	}
	if err == nil && o.n < len(p) {
		err = io.ErrShortWrite
	}
	return o.n, err
}

// writeAwait writes p and returns once the connection is readable (or the read deadline
// passed), for a peer that sends nothing unasked: the reply cannot be there already, so
// trying to read it at once would only cost a system call. The poller's readiness is reset
// before the write, so nothing that arrives after it is missed; and a peer that closed
// while idle answers the write with a reset, which wakes the wait too.
func (o *rawOp) writeAwait(fd uintptr) bool {
	if o.wrote {
		return true
	}
	o.wrote = true
	o.write(fd)
	return o.errno != 0 || len(o.p) > 0 // on an error or a full socket buffer, stop here
}

func writeAwait(w io.Writer, p []byte) (int, error) {
	x, ok := w.(*rawIO)
	if !ok {
		return w.Write(p)
	}
	o := &x.aw
	o.p, o.n, o.errno, o.wrote = p, 0, 0, false
	err := x.rc.Read(o.fn)
	rest, n := o.p, o.n
	o.p = nil
	switch {
	case o.errno != 0:
		return n, o.errno
	case len(rest) > 0: // the socket's buffer was full: write the rest the usual way
		m, err := x.Write(rest)
		return n + m, err
	case err != nil && !isTimeout(err):
		return n, err
	}
	return n, nil // a timeout shows when the reply is read
}

func plainWrite(w io.Writer, p []byte) (int, error) { return w.Write(p) }

// flushAwait flushes bw, whose writer is w, as writeAwait writes: it returns once the
// connection is readable or its read deadline has passed. For a client that sends its next
// request only once it has the answer, as nearly every one does, that saves the read that
// would find nothing yet. One that sent more before the answer was out (pipelining, unseen
// yet) is not woken by it — readiness was reset before the write — so the caller bounds the
// wait with a short read deadline, after which it reads as usual. Only a rawIO waits (see
// awaits); on another writer it is bw.Flush.
func flushAwait(bw *bufio.Writer, w io.Writer) error {
	x, ok := w.(*rawIO)
	if !ok {
		return bw.Flush()
	}
	x.await = true
	err := bw.Flush()
	x.await = false
	return err
}

// awaits reports whether flushAwait on w waits for the next request.
func awaits(w io.Writer) bool {
	_, ok := w.(*rawIO)
	return ok
}
