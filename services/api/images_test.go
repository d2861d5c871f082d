package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"enjin/services/api"
	"enjin/services/images"
	"enjin/services/inventory"
	"enjin/test/harness"
)

// imageLimits are the tests' limits: small enough to exceed cheaply.
var imageLimits = images.Limits{MaxUpload: 16 << 20, MaxVirtualSize: harness.MaxVirtualSize, MaxKernel: 1 << 20, MaxInitrd: 4 << 20}

// imagesEnv is an env whose API keeps images, in dir.
type imagesEnv struct {
	*env
	dir    string
	asAcme string // acme's tenant token
	asGlx  string // globex's
}

// newImagesEnv serves an API with an image store over a fresh database, by the production
// server settings with timeouts to, and makes the tenants acme and globex with tokens.
func newImagesEnv(t *testing.T, to api.Timeouts) *imagesEnv {
	t.Helper()
	url := harness.StartPostgres(t).CreateDatabase(t, "")
	store, err := inventory.Open(t.Context(), url, harness.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	dir := filepath.Join(t.TempDir(), "images")
	is, err := images.New(images.Config{Dir: dir, ToolTimeout: 20 * time.Second, Logger: harness.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: store, ring0: &testRing0{store: store}}
	e.api, err = api.New(api.Config{Store: store, Ring0: e.ring0, Checkers: checkers(t), Logger: harness.Logger(t),
		Images: is, ImageLimits: imageLimits})
	if err != nil {
		t.Fatal(err)
	}
	api.SetPanicHook(e.api, func(any) { e.panics.Add(1) })
	e.srv = httptest.NewUnstartedServer(nil)
	e.srv.Config = api.NewServer("", e.api.Handler(), to)
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	c := *e.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	e.client = &c
	ie := &imagesEnv{env: e, dir: dir}
	tokens := map[string]string{}
	for _, tn := range []string{"acme", "globex"} {
		if r := e.do(t, "POST", "/v1/tenants", []byte(`{"name":"`+tn+`"}`), "Authorization", asAdmin, "Content-Type", "application/json"); r.status != 201 {
			t.Fatalf("create %s: %d %s", tn, r.status, r.body)
		}
		r := e.do(t, "POST", "/v1/tenants/"+tn+"/tokens", []byte(`{}`), "Authorization", asAdmin, "Content-Type", "application/json")
		if r.status != 201 {
			t.Fatalf("token for %s: %d %s", tn, r.status, r.body)
		}
		tokens[tn] = "Bearer " + str(r.json, "token")
	}
	ie.asAcme, ie.asGlx = tokens["acme"], tokens["globex"]
	t.Cleanup(func() {
		if n := e.panics.Load(); n != 0 {
			t.Errorf("%d panics recovered, want 0", n)
		}
	})
	return ie
}

// stored lists the files in the store and its staging directory.
func (ie *imagesEnv) stored(t *testing.T) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(ie.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, strings.TrimPrefix(p, ie.dir+"/"))
		}
		return nil
	})
	return files
}

func octets(auth string) []string {
	return []string{"Authorization", auth, "Content-Type", "application/octet-stream"}
}

// TestImageUploadsRefuseHostileImages has a tenant upload every hostile image: each is a 4xx
// naming the reason, nothing is stored, no record is made, and no canary is opened.
func TestImageUploadsRefuseHostileImages(t *testing.T) {
	ie := newImagesEnv(t, api.Timeouts{})
	for _, h := range harness.HostileImages(t) {
		t.Run(h.Name, func(t *testing.T) {
			b, err := os.ReadFile(h.Path)
			if err != nil {
				t.Fatal(err)
			}
			r := ie.do(t, "POST", "/v1/images?name=evil&format="+h.Format, b, octets(ie.asAcme)...)
			if r.status != http.StatusUnprocessableEntity || str(r.json, "code") != "refused" || !strings.Contains(str(r.json, "error"), h.Reason) {
				t.Fatalf("got %d %s; want 422 refused for %q", r.status, r.body, h.Reason)
			}
			checkShape(t, "POST", r, 0)
			if h.Canary != nil && h.Canary.Opened() {
				t.Fatalf("%s was opened", h.Canary.Path)
			}
			if files := ie.stored(t); len(files) > 0 {
				t.Fatalf("stored %v after a refusal", files)
			}
		})
	}
	if r := ie.do(t, "GET", "/v1/images", nil, "Authorization", asAdmin); r.status != 200 || str(r.json, "images") != "[]" {
		t.Fatalf("images after refusals: %d %s; want none", r.status, r.body)
	}
}

// counting yields n pseudo-random bytes and counts what was read.
type counting struct {
	left int64
	read atomic.Int64
	r    *rand.ChaCha8
}

func (c *counting) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), c.left)]
	c.r.Read(p)
	c.left -= int64(len(p))
	c.read.Add(int64(len(p)))
	return len(p), nil
}

// TestImageUploadOverLimit streams 1 GiB, chunked, at an API that takes 16 MiB: 413, having
// read and staged little more than the limit; one announced by its Content-Length is
// refused before a byte is read.
func TestImageUploadOverLimit(t *testing.T) {
	ie := newImagesEnv(t, api.Timeouts{})
	var most atomic.Int64
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { // ends with stop
		defer close(done)
		for ctx.Err() == nil {
			var n int64
			filepath.WalkDir(ie.dir, func(_ string, d os.DirEntry, err error) error {
				if fi, ierr := d.Info(); err == nil && ierr == nil && !d.IsDir() {
					n += fi.Size()
				}
				return nil
			})
			most.Store(max(most.Load(), n))
			time.Sleep(time.Millisecond)
		}
	}()
	body := &counting{left: 1 << 30, r: rand.NewChaCha8([32]byte{3})}
	req, _ := http.NewRequestWithContext(t.Context(), "POST", ie.srv.URL+"/v1/images?name=huge&format=raw", body)
	req.Header.Set("Authorization", ie.asAcme)
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err := ie.client.Do(req)
	stop()
	<-done
	if err != nil {
		t.Fatalf("POST: %v (after %d bytes)", err, body.read.Load())
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "larger than the limit") {
		t.Fatalf("got %d %s; want 413", res.StatusCode, b)
	}
	if n := body.read.Load(); n > 64<<20 {
		t.Errorf("the client sent %d bytes before the refusal; want little more than the 16 MiB limit", n)
	}
	if m := most.Load(); m > imageLimits.MaxUpload+1 {
		t.Errorf("the store held %d bytes at most; want at most the limit", m)
	}
	if files := ie.stored(t); len(files) > 0 {
		t.Errorf("stored %v", files)
	}
	t.Logf("1 GiB upload refused after the client sent %d bytes; staged at most %d", body.read.Load(), most.Load())

	announced := &counting{left: 1 << 30, r: rand.NewChaCha8([32]byte{4})}
	req, _ = http.NewRequestWithContext(t.Context(), "POST", ie.srv.URL+"/v1/images?name=huge&format=raw", io.LimitReader(announced, 1<<30))
	req.ContentLength = 1 << 30
	req.Header.Set("Authorization", asAdmin)
	req.Header.Set("Content-Type", "application/octet-stream")
	res, err = ie.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge || str(decode(b), "code") != "too_large" {
		t.Fatalf("announced 1 GiB: got %d %s; want 413 too_large", res.StatusCode, b)
	}
}

func decode(b []byte) map[string]any {
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// rawDisk writes a 4 MiB raw disk image whose first MiB is random.
func rawDisk(t *testing.T, seed byte) (string, []byte) {
	content := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{seed}).Read(content[:1<<20])
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, content
}

// TestImageLifecycle uploads good images — raw, the same content as qcow2, a kernel pair —
// fetches them back, and deletes them: one stored file serves every record of the same
// content and goes with the last of them.
func TestImageLifecycle(t *testing.T) {
	ie := newImagesEnv(t, api.Timeouts{})
	raw, content := rawDisk(t, 5)
	qcow := filepath.Join(t.TempDir(), "disk.qcow2")
	harness.QemuImg(t, "convert", "-q", "-f", "raw", "-O", "qcow2", raw, qcow)
	qb, _ := os.ReadFile(qcow)

	r := ie.do(t, "POST", "/v1/images?name=debian&format=raw", content, octets(asAdmin)...)
	if r.status != 201 || str(r.json, "public") != "true" || str(r.json, "format") != "qcow2" || str(r.json, "source_format") != "raw" ||
		str(r.json, "virtual_size") != "4194304" || str(r.json, "kind") != "disk" || r.header.Get("Location") != "/v1/images/"+str(r.json, "id") {
		t.Fatalf("upload raw: %d %s", r.status, r.body)
	}
	pub, digest := str(r.json, "id"), str(r.json, "digest")
	r = ie.do(t, "POST", "/v1/images?name=debian&format=qcow2", qb, octets(ie.asAcme)...)
	if r.status != 201 || str(r.json, "tenant") != "acme" || str(r.json, "public") != "false" || str(r.json, "digest") != digest {
		t.Fatalf("upload the same content as qcow2: %d %s; want digest %s", r.status, r.body, digest)
	}
	own := str(r.json, "id")
	if files := ie.stored(t); len(files) != 1 || files[0] != digest+".qcow2" {
		t.Fatalf("stored %v; want the one file %s.qcow2", files, digest)
	}

	// The content is the stored qcow2, holding what was uploaded.
	r = ie.do(t, "GET", "/v1/images/"+own+"/content", nil, "Authorization", asAdmin)
	if r.status != 200 || r.header.Get("ETag") != `"`+digest+`"` || r.header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("content: %d %v", r.status, r.header)
	}
	got := filepath.Join(t.TempDir(), "got.qcow2")
	os.WriteFile(got, r.body, 0o600)
	if out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, got).CombinedOutput(); err != nil {
		t.Fatalf("fetched content differs from the upload: %v\n%s", err, out)
	}
	r = ie.do(t, "GET", "/v1/images/"+own+"/content", nil, "Authorization", asAdmin, "Range", "bytes=0-3")
	if r.status != 206 || string(r.body) != "QFI\xfb" {
		t.Fatalf("range of the content: %d %q", r.status, r.body)
	}

	// A kernel pair, as a streamed form.
	kernel, initrd := bzImage(), gzipped("070701")
	form, ct := multipartForm(t, [][2]string{{"kernel", string(kernel)}, {"initrd", string(initrd)}})
	r = ie.do(t, "POST", "/v1/images/kernel?name=vmlinuz", form, "Authorization", ie.asAcme, "Content-Type", ct)
	if r.status != 201 || str(r.json, "kind") != "kernel" || str(r.json, "format") != "bzimage" || str(r.json, "kernel.size") != fmt.Sprint(len(kernel)) {
		t.Fatalf("upload kernel: %d %s", r.status, r.body)
	}
	kid := str(r.json, "id")
	for part, want := range map[string][]byte{"kernel": kernel, "initrd": initrd} {
		r = ie.do(t, "GET", "/v1/images/"+kid+"/content?part="+part, nil, "Authorization", asAdmin)
		if r.status != 200 || !bytes.Equal(r.body, want) {
			t.Fatalf("content of the %s: %d, %d bytes", part, r.status, len(r.body))
		}
	}
	if r = ie.do(t, "GET", "/v1/images/"+kid+"/content", nil, "Authorization", asAdmin); r.status != 400 {
		t.Fatalf("content of a kernel pair without part: %d %s; want 400", r.status, r.body)
	}

	// Deleting one record keeps the file the other names; deleting the last removes it.
	if r = ie.do(t, "DELETE", "/v1/images/"+pub, nil, "Authorization", asAdmin); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if files := ie.stored(t); !contains(files, digest+".qcow2") {
		t.Fatalf("stored %v after deleting one of two records: want %s.qcow2 kept", files, digest)
	}
	if r = ie.do(t, "DELETE", "/v1/images/"+own, nil, "Authorization", ie.asAcme); r.status != 204 {
		t.Fatalf("tenant deletes its own: %d %s", r.status, r.body)
	}
	if r = ie.do(t, "DELETE", "/v1/images/"+kid, nil, "Authorization", ie.asAcme); r.status != 204 {
		t.Fatalf("tenant deletes its kernel: %d %s", r.status, r.body)
	}
	if files := ie.stored(t); len(files) != 0 {
		t.Fatalf("stored %v after every record went", files)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func bzImage() []byte {
	b := bytes.Repeat([]byte{0x90}, 8192)
	b[0x1fe], b[0x1ff] = 0x55, 0xaa
	copy(b[0x202:], "HdrS")
	return b
}

func gzipped(s string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	io.WriteString(zw, s)
	zw.Close()
	return buf.Bytes()
}

// multipartForm encodes parts (name, content) in order as a form.
func multipartForm(t *testing.T, parts [][2]string) ([]byte, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		w, err := mw.CreateFormFile(p[0], p[0])
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, p[1])
	}
	mw.Close()
	return buf.Bytes(), mw.FormDataContentType()
}

// TestImageRoutes walks the image routes' permissions and errors: a tenant uploads and
// manages only its own tenant's images and reads public ones, and cannot see another's,
// make a public one or fetch content; a reader only reads; every refusal names why.
func TestImageRoutes(t *testing.T) {
	ie := newImagesEnv(t, api.Timeouts{})
	_, content := rawDisk(t, 6)
	disk := string(content)
	form, ct := multipartForm(t, [][2]string{{"kernel", string(bzImage())}, {"initrd", string(gzipped("070701"))}})
	vars := map[string]string{"acme": ie.asAcme, "globex": ie.asGlx}
	asAcme, asGlobex := []string{"Authorization", "{acme}"}, []string{"Authorization", "{globex}"}
	oct := []string{"Content-Type", "application/octet-stream"}
	up := func(name, query string, auth []string, status int, code string, save ...string) step {
		s := step{name: name, method: "POST", path: "/v1/images?" + query, hdr: append(append([]string{}, auth...), oct...), body: disk, status: status, code: code}
		if len(save) > 0 {
			s.save = map[string]string{save[0]: "id"}
		}
		return s
	}
	admin := []string{"Authorization", asAdmin}
	steps := []step{
		up("admin uploads a public image", "name=base&format=raw", admin, 201, "", "pub"),
		up("admin uploads for acme", "name=tools&format=raw&tenant=acme", admin, 201, "", "acmetools"),
		up("globex uploads its own", "name=secret&format=raw", asGlobex, 201, "", "glx"),
		up("acme uploads its own, naming itself", "name=mine&format=raw&tenant=acme", asAcme, 201, "", "mine"),
		{name: "acme's upload is acme's, never public", method: "GET", path: "/v1/images/{mine}", hdr: asAcme, status: 200,
			check: want("tenant", "acme", "public", "false")},
		up("acme uploads for globex", "name=x&format=raw&tenant=globex", asAcme, 403, "forbidden"),
		up("acme takes a used name", "name=mine&format=raw", asAcme, 409, "exists"),
		up("admin takes a public name", "name=base&format=raw", admin, 409, "exists"),
		up("same name, other owner", "name=base&format=raw&tenant=globex", admin, 201, ""),
		up("reader uploads", "name=r&format=raw", []string{"Authorization", asBob}, 403, "forbidden"),
		up("anonymous uploads", "name=r&format=raw", nil, 401, "unauthorized"),
		up("admin uploads for an unknown tenant", "name=r&format=raw&tenant=nobody", admin, 404, "not_found"),
		up("no format", "name=r", admin, 400, "bad_query"),
		up("format vmdk", "name=r&format=vmdk", admin, 400, "bad_query"),
		up("no name", "format=raw", admin, 400, "bad_query"),
		up("name not a slug", "name=Big+Disk&format=raw", admin, 400, "bad_query"),
		up("name a UUID", "name="+inventory.NewID()+"&format=raw", admin, 400, "bad_query"),
		up("unknown parameter", "name=r&format=raw&owner=me", admin, 400, "bad_query"),
		{name: "JSON body", method: "POST", path: "/v1/images?name=r&format=raw", hdr: admin, body: `{"image":"x"}`, status: 415, code: "unsupported_media_type"},
		{name: "kernel pair", method: "POST", path: "/v1/images/kernel?name=vmlinuz", hdr: append([]string{"Content-Type", ct}, asAcme...), body: string(form),
			status: 201, save: map[string]string{"kernel": "id"}, check: want("kind", "kernel", "tenant", "acme")},
		{name: "kernel pair as octets", method: "POST", path: "/v1/images/kernel?name=k2", hdr: append(append([]string{}, oct...), asAcme...), body: string(form),
			status: 415, code: "unsupported_media_type"},

		{name: "admin lists all", method: "GET", path: "/v1/images", hdr: admin, status: 200, check: count("images", 6)},
		{name: "reader lists all", method: "GET", path: "/v1/images", auth: asBob, status: 200, check: count("images", 6)},
		{name: "acme lists public and its own", method: "GET", path: "/v1/images", hdr: asAcme, status: 200, check: func(t *testing.T, r response, _ map[string]string) {
			var got []string
			for i := range 10 {
				if n := str(r.json, fmt.Sprintf("images.%d.name", i)); n != "" {
					got = append(got, str(r.json, fmt.Sprintf("images.%d.tenant", i))+"/"+n)
				}
			}
			if strings.Join(got, " ") != "/base acme/mine acme/tools acme/vmlinuz" {
				t.Errorf("acme sees %v", got)
			}
		}},
		{name: "acme lists globex's", method: "GET", path: "/v1/images?tenant=globex", hdr: asAcme, status: 403, code: "forbidden"},
		{name: "acme lists public ones", method: "GET", path: "/v1/images?public=1", hdr: asAcme, status: 200, check: count("images", 1)},
		{name: "list by name", method: "GET", path: "/v1/images?name=base", hdr: admin, status: 200, check: count("images", 2)},
		{name: "list tenant and public", method: "GET", path: "/v1/images?tenant=acme&public=1", hdr: admin, status: 400, code: "bad_query"},

		{name: "acme reads a public image", method: "GET", path: "/v1/images/{pub}", hdr: asAcme, status: 200, check: want("public", "true")},
		{name: "acme reads globex's", method: "GET", path: "/v1/images/{glx}", hdr: asAcme, status: 404, code: "not_found"},
		{name: "bad image id", method: "GET", path: "/v1/images/base", hdr: admin, status: 400, code: "bad_id"},
		{name: "unknown image", method: "GET", path: "/v1/images/{nouuid}", hdr: admin, status: 404},
		{name: "acme fetches content", method: "GET", path: "/v1/images/{mine}/content", hdr: asAcme, status: 403, code: "forbidden"},
		{name: "reader fetches content", method: "GET", path: "/v1/images/{pub}/content", auth: asBob, status: 403, code: "forbidden"},
		{name: "disk content with a part", method: "GET", path: "/v1/images/{pub}/content?part=kernel", hdr: admin, status: 400, code: "bad_query"},

		{name: "acme deletes globex's", method: "DELETE", path: "/v1/images/{glx}", hdr: asAcme, status: 404},
		{name: "acme deletes a public image", method: "DELETE", path: "/v1/images/{pub}", hdr: asAcme, status: 403, code: "forbidden"},
		{name: "reader deletes", method: "DELETE", path: "/v1/images/{glx}", auth: asBob, status: 403, code: "forbidden"},
		{name: "globex still has it", method: "GET", path: "/v1/images/{glx}", hdr: asGlobex, status: 200},
		{name: "acme deletes what admin made for it", method: "DELETE", path: "/v1/images/{acmetools}", hdr: asAcme, status: 204},
		{name: "admin deletes globex's", method: "DELETE", path: "/v1/images/{glx}", hdr: admin, status: 204},
		{name: "deleted", method: "DELETE", path: "/v1/images/{glx}", hdr: admin, status: 404},
	}
	for i, s := range steps {
		ok := t.Run(fmt.Sprintf("%03d %s", i, s.name), func(t *testing.T) { ie.run(t, s, withNoUUID(vars)) })
		if !ok && s.save != nil {
			t.Fatalf("step %q saves variables later steps need; stopping", s.name)
		}
	}
}

func withNoUUID(vars map[string]string) map[string]string {
	if vars["nouuid"] == "" {
		vars["nouuid"] = inventory.NewID()
	}
	return vars
}

// TestKernelFormRefusals: the form must hold a kernel, then an initrd, and nothing else;
// garbage in either is refused, naming which.
func TestKernelFormRefusals(t *testing.T) {
	ie := newImagesEnv(t, api.Timeouts{})
	k, i := string(bzImage()), string(gzipped("070701"))
	for _, tc := range []struct {
		name   string
		parts  [][2]string
		status int
		reason string
	}{
		{"initrd first", [][2]string{{"initrd", i}, {"kernel", k}}, 400, `part "initrd" where "kernel" belongs`},
		{"no initrd", [][2]string{{"kernel", k}}, 400, `the form has no part "initrd"`},
		{"a third part", [][2]string{{"kernel", k}, {"initrd", i}, {"cmdline", "init=/bin/sh"}}, 400, `part "cmdline" after initrd`},
		{"garbage kernel", [][2]string{{"kernel", "MZ\x90\x00 not a kernel"}, {"initrd", i}}, 422, "the kernel is not a bzImage"},
		{"garbage initrd", [][2]string{{"kernel", k}, {"initrd", "#!/bin/sh\n"}}, 422, "the initramfs is neither gzip, zstd, xz nor a cpio archive"},
		{"kernel over the limit", [][2]string{{"kernel", k + strings.Repeat("x", 1<<20)}, {"initrd", i}}, 413, "the kernel is larger than the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form, ct := multipartForm(t, tc.parts)
			r := ie.do(t, "POST", "/v1/images/kernel?name=k", form, "Authorization", ie.asAcme, "Content-Type", ct)
			if r.status != tc.status || !strings.Contains(str(r.json, "error"), tc.reason) {
				t.Fatalf("got %d %s; want %d naming %q", r.status, r.body, tc.status, tc.reason)
			}
			checkShape(t, "POST", r, 0)
			if files := ie.stored(t); len(files) > 0 {
				t.Fatalf("stored %v", files)
			}
		})
	}
}

// slowBody yields chunks of b with a pause before each, or stalls for good after stallAfter
// chunks (if positive).
type slowBody struct {
	b          []byte
	chunk      int
	pause      time.Duration
	stallAfter int
	n          int // chunks begun
	left       int // of the current chunk
	ctx        context.Context
}

func (s *slowBody) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	if s.stallAfter > 0 && s.n >= s.stallAfter && s.left == 0 {
		<-s.ctx.Done()
		return 0, s.ctx.Err()
	}
	if s.left == 0 {
		time.Sleep(s.pause)
		s.n++
		s.left = s.chunk
	}
	n := copy(p, s.b[:min(len(s.b), s.left)])
	s.b, s.left = s.b[n:], s.left-n
	return n, nil
}

// TestImageUploadOutlivesTimeouts serves the API with one-second read and write timeouts: an
// upload that keeps coming for longer is taken, one that stalls is cut, leaving nothing.
func TestImageUploadOutlivesTimeouts(t *testing.T) {
	ie := newImagesEnv(t, api.Timeouts{Read: time.Second, Write: time.Second})
	_, content := rawDisk(t, 7)
	slow := &slowBody{b: content, chunk: len(content) / 8, pause: 300 * time.Millisecond, ctx: t.Context()}
	req, _ := http.NewRequestWithContext(t.Context(), "POST", ie.srv.URL+"/v1/images?name=slow&format=raw", slow)
	req.Header.Set("Authorization", asAdmin)
	req.Header.Set("Content-Type", "application/octet-stream")
	start := time.Now()
	res, err := ie.client.Do(req)
	if err != nil {
		t.Fatalf("slow upload: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("slow upload: %d %s", res.StatusCode, b)
	}
	t.Logf("an upload taking %v was taken", time.Since(start).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	stalled := &slowBody{b: content, chunk: 64 << 10, stallAfter: 2, ctx: ctx}
	req, _ = http.NewRequestWithContext(ctx, "POST", ie.srv.URL+"/v1/images?name=stalled&format=raw", stalled)
	req.Header.Set("Authorization", asAdmin)
	req.Header.Set("Content-Type", "application/octet-stream")
	start = time.Now()
	res, err = ie.client.Do(req)
	if err == nil {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 400 {
			t.Fatalf("stalled upload: %d %s; want it cut", res.StatusCode, b)
		}
	} else if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled upload still open after %v: want it cut at the 1 s read timeout", time.Since(start))
	}
	harness.Eventually(t, 5*time.Second, func() bool { return len(ie.stored(t)) == 1 }, "the stalled upload's staging removed: %v", ie.stored(t))
	t.Logf("a stalled upload was cut after %v", time.Since(start).Round(time.Millisecond))
}

// TestImageTenantWall walks every image operation /openapi.json documents as globex, aimed
// at acme: acme's image by id, acme's tenant by name (spelled plainly and escaped), with a
// body that would harm acme if it were taken. Each must be refused (403 or 404), and acme's
// images must be as they were.
func TestImageTenantWall(t *testing.T) {
	ie := newImagesEnv(t, api.Timeouts{})
	_, content := rawDisk(t, 8)
	r := ie.do(t, "POST", "/v1/images?name=acme-disk&format=raw", content, octets(ie.asAcme)...)
	if r.status != 201 {
		t.Fatalf("acme uploads: %d %s", r.status, r.body)
	}
	acmeImage := str(r.json, "id")
	before := ie.do(t, "GET", "/v1/images", nil, "Authorization", asAdmin)

	r = ie.do(t, "GET", "/openapi.json", nil)
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	tried := 0
	for path, ops := range doc.Paths {
		if !strings.HasPrefix(path, "/v1/images") {
			continue
		}
		for method := range ops {
			method = strings.ToUpper(method)
			var targets []string
			if strings.Contains(path, "{image}") {
				targets = []string{strings.ReplaceAll(path, "{image}", acmeImage)}
			} else {
				targets = []string{path + "?tenant=acme&name=pwned", path + "?tenant=%61cme&name=pwned"}
			}
			for _, target := range targets {
				var body []byte
				hdr := []string{"Authorization", ie.asGlx}
				if method == "POST" {
					body, hdr = content, append(hdr, "Content-Type", "application/octet-stream")
				}
				r := ie.do(t, method, target, body, hdr...)
				if r.status != 403 && r.status != 404 {
					t.Errorf("WALL BROKEN: globex: %s %s: %d %s", method, target, r.status, r.body)
				}
				tried++
			}
		}
	}
	if tried < 8 {
		t.Errorf("%d attempts: the image routes are not all documented", tried)
	}
	if after := ie.do(t, "GET", "/v1/images", nil, "Authorization", asAdmin); string(after.body) != string(before.body) {
		t.Errorf("images changed under globex's attempts:\nbefore %s\nafter  %s", before.body, after.body)
	}
}
