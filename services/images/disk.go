package images

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Put receives a disk image declared to be in format declared, proves it harmless, rewrites
// it as a standalone qcow2 and stores that under its digest. The steps, each refusing with a
// *RefusedError that names the problem:
//
//  1. the upload is streamed to a staging file, at most lim.MaxUpload bytes (TooLarge);
//  2. an empty file is refused; a raw one must be whole 512-byte sectors and must not start
//     with another format's header (declared raw, it would reach a guest as data, and any
//     tool that ever probed it would open it as that format, backing file and all);
//  3. qemu-img info, with the declared format, must read it as that format, with no backing
//     file, no external data file, no encryption, not marked corrupt, and a virtual size
//     from 1 byte to lim.MaxVirtualSize;
//  4. a qcow2 must pass qemu-img check (a truncated or damaged one does not; leaked clusters,
//     which the rewrite drops, are no reason to refuse);
//  5. qemu-img convert rewrites it as qcow2 (compat 1.1), opened with no backing at all, and
//     the result must read as a standalone qcow2 of the same virtual size and pass check.
//
// Only then is the result hashed and moved into place. If record is not nil, Put calls it
// with the image once it is in place, with the store locked against Delete and Sweep, and
// keeps a file it brought in only if record succeeds. Errors reading body wrap ErrBody.
func (s *Store) Put(ctx context.Context, body io.Reader, declared Format, lim Limits, record func(Image) error) (Image, error) {
	lim = lim.WithDefaults()
	if _, err := ParseFormat(string(declared)); err != nil {
		return Image{}, err
	}
	dir, err := s.stage()
	if err != nil {
		return Image{}, err
	}
	defer os.RemoveAll(dir)
	in, size, _, err := receive(dir, "upload", body, lim.MaxUpload, nil)
	if err != nil {
		return Image{}, err
	}
	defer in.Close()
	if err := sane(in, size, declared); err != nil {
		return Image{}, err
	}
	release, err := s.slot(ctx)
	if err != nil {
		return Image{}, err
	}
	defer release()
	vsize, err := s.inspect(ctx, in, declared, lim)
	if err != nil {
		return Image{}, err
	}
	out, err := s.convert(ctx, dir, in, declared, vsize)
	if err != nil {
		return Image{}, err
	}
	defer out.Close()
	img := Image{Kind: Disk, Source: declared, VirtualSize: vsize}
	img.Digest, img.Size, err = digestFile(out)
	if err != nil {
		return Image{}, err
	}
	if err := s.keep(img, map[Part]string{PartDisk: out.Name()}, record); err != nil {
		return Image{}, err
	}
	return img, nil
}

// receive streams body into a new file name in dir, hashing it if sum is not nil, and
// refuses more than limit bytes. The file is readable by others: it is reached only through
// dir, which is root's alone, or through a descriptor handed to qemu-img.
func receive(dir, name string, body io.Reader, limit int64, sum hash.Hash) (*os.File, int64, string, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, 0, "", fmt.Errorf("images: staging: %w", err)
	}
	var w io.Writer = f
	if sum != nil {
		w = io.MultiWriter(f, sum)
	}
	br := &bodyReader{r: body}
	n, err := io.Copy(w, io.LimitReader(br, limit+1))
	switch {
	case br.err != nil:
		err = fmt.Errorf("%w: %v", ErrBody, br.err)
	case err != nil:
		err = fmt.Errorf("images: staging: %w", err)
	case n > limit:
		err = &RefusedError{Reason: fmt.Sprintf("the %s is larger than the limit of %d bytes", what(name), limit), TooLarge: true}
	}
	if err != nil {
		f.Close()
		return nil, 0, "", err
	}
	digest := ""
	if sum != nil {
		digest = "sha256-" + hex.EncodeToString(sum.Sum(nil))
	}
	return f, n, digest, nil
}

func what(name string) string {
	switch name {
	case "kernel":
		return "kernel"
	case "initrd":
		return "initramfs"
	}
	return "image"
}

// bodyReader remembers an error reading the upload, to tell it from one writing it down.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// sane refuses what can be refused without qemu-img: an empty file, a raw image of partial
// sectors, a raw image that is another format's.
func sane(f *os.File, size int64, declared Format) error {
	if size == 0 {
		return refused("the image is empty")
	}
	if declared != Raw {
		return nil
	}
	if size%512 != 0 {
		return refused("a raw image is whole 512-byte sectors; this one is %d bytes", size)
	}
	if other := sniff(f, size); other != "" {
		return refused("declared raw, but it starts with a %s header: upload it with its real format (only raw and qcow2 are accepted)", other)
	}
	return nil
}

// slot waits for one of the store's qemu-img slots; release gives it back.
func (s *Store) slot(ctx context.Context) (release func(), err error) {
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// imageInfo is what is read of qemu-img info's answer. Everything else of it is ignored
// except its top-level keys, checked for any mention of a backing file.
type imageInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
	Encrypted   bool   `json:"encrypted"`
	Specific    struct {
		Data map[string]json.RawMessage `json:"data"`
	} `json:"format-specific"`
	keys map[string]json.RawMessage
}

// info runs qemu-img info on f, as format: the format is always given, never probed, and
// info opens no backing file whatever the image says.
func (s *Store) info(ctx context.Context, f *os.File, format Format) (imageInfo, error) {
	res, err := s.tool.run(ctx, invocation{args: []string{"info", "--output=json", "-f", string(format), "/dev/fd/3"}, files: []*os.File{f}})
	if err != nil {
		return imageInfo{}, err
	}
	if res.failed() {
		return imageInfo{}, refused("qemu-img cannot read it as %s: %s", format, res.why())
	}
	return parseInfo(res.stdout)
}

func parseInfo(b []byte) (imageInfo, error) {
	var ii imageInfo
	if err := json.Unmarshal(b, &ii); err != nil {
		return ii, refused("qemu-img info gave an unreadable answer about it: %v", err)
	}
	if err := json.Unmarshal(b, &ii.keys); err != nil {
		return ii, refused("qemu-img info gave an unreadable answer about it: %v", err)
	}
	return ii, nil
}

// problem names the first reason ii is not a standalone image of format declared within
// lim, or returns "".
func (ii imageInfo) problem(declared Format, lim Limits) string {
	// Any key about a backing file refuses it; the message names the file as the header does.
	keys := slices.Sorted(maps.Keys(ii.keys))
	slices.SortStableFunc(keys, func(a, b string) int { return cmp.Compare(rank(a), rank(b)) })
	for _, k := range keys {
		if strings.Contains(k, "backing") {
			var name string
			if json.Unmarshal(ii.keys[k], &name) != nil {
				name = string(ii.keys[k])
			}
			return fmt.Sprintf("it has a backing file (%s %q): only standalone images are accepted", k, trunc(name, 100))
		}
	}
	if v, ok := ii.Specific.Data["data-file"]; ok {
		var name string
		if json.Unmarshal(v, &name) != nil {
			name = string(v)
		}
		return fmt.Sprintf("it has an external data file (%q): only standalone images are accepted", trunc(name, 100))
	}
	switch {
	case ii.Format != string(declared):
		return fmt.Sprintf("declared %s, but qemu-img reads it as %q", declared, trunc(ii.Format, 40))
	case ii.Encrypted || ii.Specific.Data["encrypt"] != nil:
		return "it is encrypted"
	case string(ii.Specific.Data["corrupt"]) == "true":
		return "it is marked corrupt"
	case ii.VirtualSize <= 0:
		return "its virtual size is zero"
	case ii.VirtualSize > lim.MaxVirtualSize:
		return fmt.Sprintf("its virtual size, %d bytes, is over the limit of %d", ii.VirtualSize, lim.MaxVirtualSize)
	}
	return ""
}

// rank orders the keys that name a backing file first, as the header gives it.
func rank(key string) int {
	switch key {
	case "backing-filename":
		return 0
	case "full-backing-filename":
		return 1
	}
	return 2
}

// inspect runs the checks of qemu-img info and, for a qcow2, qemu-img check, and returns the
// image's virtual size.
func (s *Store) inspect(ctx context.Context, in *os.File, declared Format, lim Limits) (int64, error) {
	ii, err := s.info(ctx, in, declared)
	if err != nil {
		return 0, err
	}
	if p := ii.problem(declared, lim); p != "" {
		return 0, refused("%s", p)
	}
	if declared == QCOW2 {
		if err := s.check(ctx, in); err != nil {
			return 0, err
		}
	}
	return ii.VirtualSize, nil
}

// checkResult is what is read of qemu-img check's answer.
type checkResult struct {
	CheckErrors int64 `json:"check-errors"`
	Corruptions int64 `json:"corruptions"`
}

// check runs qemu-img check on a qcow2 that info found standalone, opened with no backing
// all the same: check would otherwise open the backing file the header names.
func (s *Store) check(ctx context.Context, f *os.File) error {
	res, err := s.tool.run(ctx, invocation{args: []string{"check", "--output=json", "-f", "qcow2", noBacking(QCOW2)}, files: []*os.File{f}})
	if err != nil {
		return err
	}
	var cr checkResult
	jerr := json.Unmarshal(res.stdout, &cr)
	switch {
	case res.timedOut || res.signal != 0 || res.tooMuch:
		return refused("qcow2 check failed: %s", res.why())
	case res.code == 2 || cr.Corruptions > 0:
		return refused("qemu-img check found %d corruptions: the image is truncated or damaged", cr.Corruptions)
	case res.code == 0 || res.code == 3: // 3: leaked clusters only, which convert drops
		if jerr != nil || cr.CheckErrors > 0 {
			return refused("qemu-img check could not check it all (%d errors)", cr.CheckErrors)
		}
		return nil
	}
	return refused("qemu-img check could not check it: %s", res.why())
}

// noBacking is the name qemu-img opens the image on descriptor 3 by: pinned to format and,
// for a qcow2, with no backing file whatever its header says.
func noBacking(f Format) string {
	if f == QCOW2 {
		return `json:{"driver":"qcow2","backing":null,"file":{"driver":"file","filename":"/dev/fd/3"}}`
	}
	return "/dev/fd/3"
}

// convert rewrites in as a standalone qcow2 in dir and checks the result: qcow2, standalone,
// the virtual size of the input, passing check. The output file is qemu-img's uid's only
// while it writes it.
func (s *Store) convert(ctx context.Context, dir string, in *os.File, declared Format, vsize int64) (*os.File, error) {
	out, err := os.OpenFile(filepath.Join(dir, "image.qcow2"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("images: staging: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			out.Close()
		}
	}()
	if s.tool.confine {
		if err := out.Chown(int(s.tool.uid), int(s.tool.uid)); err != nil {
			return nil, fmt.Errorf("images: staging: %w", err)
		}
	}
	// The rewrite holds at most the virtual size in data, plus its tables.
	fsize := vsize + vsize/256 + 64<<20
	res, err := s.tool.run(ctx, invocation{
		args:  []string{"convert", "-f", string(declared), "-O", "qcow2", "-o", "compat=1.1", noBacking(declared), "/dev/fd/4"},
		files: []*os.File{in, out}, fsize: fsize})
	if err != nil {
		return nil, err
	}
	if res.failed() {
		return nil, refused("qemu-img cannot convert it: %s", res.why())
	}
	// Root's again before anything reads it; readable while it is checked like an upload.
	if s.tool.confine {
		if err := out.Chown(0, 0); err != nil {
			return nil, fmt.Errorf("images: staging: %w", err)
		}
	}
	if err := out.Chmod(0o644); err != nil {
		return nil, fmt.Errorf("images: staging: %w", err)
	}
	ii, err := s.info(ctx, out, QCOW2)
	if err != nil {
		return nil, fmt.Errorf("images: the rewrite of an accepted image: %v", err)
	}
	if p := ii.problem(QCOW2, Limits{MaxVirtualSize: vsize}); p != "" || ii.VirtualSize != vsize {
		return nil, fmt.Errorf("images: the rewrite of an accepted image is not a standalone qcow2 of %d bytes: %s (virtual size %d)", vsize, p, ii.VirtualSize)
	}
	if err := s.check(ctx, out); err != nil {
		return nil, fmt.Errorf("images: the rewrite of an accepted image: %v", err)
	}
	if err := out.Chmod(0o600); err != nil {
		return nil, fmt.Errorf("images: staging: %w", err)
	}
	ok = true
	return out, nil
}

// digestFile hashes f from its start.
func digestFile(f *os.File) (string, int64, error) {
	sum := sha256.New()
	n, err := io.Copy(sum, io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		return "", 0, fmt.Errorf("images: hash: %w", err)
	}
	return "sha256-" + hex.EncodeToString(sum.Sum(nil)), n, nil
}

// keep moves the staged files of img into place and has record note it, under the store's
// lock; files it brought in go again if record fails.
func (s *Store) keep(img Image, files map[Part]string, record func(Image) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var placed []Part
	undo := func() {
		for _, p := range placed {
			os.Remove(s.Path(img.Digest, p))
		}
	}
	for _, p := range Parts(img.Kind) {
		isNew, err := s.place(files[p], img.Digest, p)
		if err != nil {
			undo()
			return err
		}
		if isNew {
			placed = append(placed, p)
		}
	}
	if record != nil {
		if err := record(img); err != nil {
			undo()
			return err
		}
	}
	return nil
}
