package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// extents lists the data of f when it is sparse (fewer blocks allocated than its size needs),
// and nil when it is not, or when its file system cannot say where the holes are.
func extents(f *os.File, info fs.FileInfo) ([]Extent, error) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || st.Blocks*512 >= info.Size() {
		return nil, nil
	}
	size, fd := info.Size(), int(f.Fd())
	xs := []Extent{}
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		} else if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil, nil
		} else if err != nil {
			return nil, fmt.Errorf("seek data: %w", err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("seek hole: %w", err)
		}
		hole = min(hole, size) // the file may have grown since info
		if hole > data {
			xs = append(xs, Extent{data, hole - data})
		}
		off = hole
	}
	return xs, nil
}

// The ioctls of linux/fs.h, _IOWR('X', 119, int) and _IOWR('X', 120, int).
const (
	fiFreeze = 0xc0045877
	fiThaw   = 0xc0045878
)

// freeze freezes the file system mounted at dir (FIFREEZE: its dirty data written back, new
// writes held) and returns the function that thaws it.
func freeze(dir string) (thaw func(), err error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.IoctlSetInt(int(d.Fd()), fiFreeze, 0); err != nil {
		d.Close()
		return nil, err
	}
	return func() {
		unix.IoctlSetInt(int(d.Fd()), fiThaw, 0)
		d.Close()
	}, nil
}
