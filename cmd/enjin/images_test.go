package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const (
	imageID   = "0b7c3f6e-8a51-4d2e-9f0a-1c2d3e4f5a6b"
	diskJSON  = `{"id":"` + imageID + `","name":"debian","public":true,"kind":"disk","format":"qcow2","source_format":"raw","size":1200000,"virtual_size":4194304,"digest":"sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","created_at":"2026-01-02T03:04:05Z"}`
	toolsJSON = `{"id":"1b7c3f6e-8a51-4d2e-9f0a-1c2d3e4f5a6b","name":"tools","tenant":"acme","public":false,"kind":"disk","format":"qcow2","source_format":"qcow2","size":2000000,"virtual_size":2000000000,"digest":"sha256-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","created_at":"2026-01-02T03:04:05Z"}`
	kernJSON  = `{"id":"2b7c3f6e-8a51-4d2e-9f0a-1c2d3e4f5a6b","name":"direct","public":true,"kind":"kernel","format":"bzimage","source_format":"bzimage","size":3000,"digest":"sha256-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","kernel":{"digest":"sha256-cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc","size":1000},"initrd":{"digest":"sha256-dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd","size":2000},"created_at":"2026-01-02T03:04:05Z"}`
)

func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func fileOf(t *testing.T, name string, b []byte) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImagesUpload(t *testing.T) {
	disk := bytes.Repeat([]byte{1}, 1<<20)
	diskFile := fileOf(t, "disk.img", disk)
	kernel, initrd := fileOf(t, "vmlinuz", []byte("the kernel")), fileOf(t, "initrd.img", []byte("the initramfs"))
	stored := "stored image debian: " + imageID + " (qcow2 from raw, 4.2 MB virtual, sha256-0123456789ab)\n"
	progress := "uploading disk.img, 1.0 MB\nuploaded 1.0 MB; ring 0 is checking it\n"
	refusal := `{"error":"image refused: it has a backing file (backing-filename \"/etc/shadow\"): only standalone images are accepted","code":"refused"}`
	for _, tc := range []struct {
		name    string
		args    []string
		handler http.HandlerFunc
		code    int
		stdout  string
		stderr  string // exactly, or its end when code is 1
		check   func(t *testing.T, r recorded)
	}{
		{name: "disk", args: []string{"images", "upload", diskFile, "--name", "debian", "--format", "raw"}, handler: answer(201, diskJSON),
			stdout: stored, stderr: progress, check: func(t *testing.T, r recorded) {
				if r.Method != "POST" || r.Path != "/v1/images" || r.Query != "format=raw&name=debian" || r.Header.Get("Content-Type") != "application/octet-stream" ||
					r.Header.Get("Content-Length") != strconv.Itoa(len(disk)) || r.Body != string(disk) {
					t.Errorf("request %s %s?%s %v, %d bytes", r.Method, r.Path, r.Query, r.Header, len(r.Body))
				}
			}},
		{name: "disk for a tenant, quietly", args: []string{"images", "upload", "-q", diskFile, "--name", "tools", "--format", "qcow2", "--tenant", "acme"},
			handler: answer(201, toolsJSON), stdout: "stored image acme/tools: 1b7c3f6e-8a51-4d2e-9f0a-1c2d3e4f5a6b (qcow2 from qcow2, 2.0 GB virtual, sha256-aaaaaaaaaaaa)\n",
			check: func(t *testing.T, r recorded) {
				if r.Query != "format=qcow2&name=tools&tenant=acme" {
					t.Errorf("query %q", r.Query)
				}
			}},
		{name: "as JSON", args: []string{"images", "upload", diskFile, "--name", "debian", "--format", "raw", "-q", "-o", "json"}, handler: answer(201, diskJSON),
			stdout: "{\n  \"id\": \"" + imageID + "\",\n"},
		{name: "refused", args: []string{"images", "upload", diskFile, "--name", "evil", "--format", "qcow2"}, handler: answer(422, refusal), code: 1,
			stderr: progress + `enjin: upload disk.img: image refused: it has a backing file (backing-filename "/etc/shadow"): only standalone images are accepted (422)` + "\n"},
		{name: "refused quietly", args: []string{"images", "upload", diskFile, "--name", "evil", "--format", "qcow2", "-q"}, handler: answer(422, refusal), code: 1,
			stderr: `enjin: upload disk.img: image refused: it has a backing file (backing-filename "/etc/shadow"): only standalone images are accepted (422)` + "\n"},
		{name: "too large", args: []string{"images", "upload", diskFile, "--name", "big", "--format", "raw", "-q"},
			handler: answer(413, `{"error":"request body of 1048576 bytes: the limit is 1000","code":"too_large"}`), code: 1,
			stderr: "enjin: upload disk.img: request body of 1048576 bytes: the limit is 1000 (413)\n"},
		{name: "missing file", args: []string{"images", "upload", "/nonexistent.img", "--name", "x", "--format", "raw"}, code: 1,
			stderr: "enjin: upload: open /nonexistent.img: no such file or directory\n"},
		{name: "kernel", args: []string{"images", "upload", "--kernel", kernel, "--initrd", initrd, "--name", "direct"}, handler: func(w http.ResponseWriter, r *http.Request) {
			mr, err := r.MultipartReader()
			if err != nil {
				http.Error(w, err.Error(), 415)
				return
			}
			var got []string
			for p, err := mr.NextPart(); err == nil; p, err = mr.NextPart() {
				b, _ := io.ReadAll(p)
				got = append(got, p.FormName()+"="+string(b))
			}
			if strings.Join(got, ",") != "kernel=the kernel,initrd=the initramfs" {
				http.Error(w, "parts "+strings.Join(got, ","), 400)
				return
			}
			answer(201, kernJSON)(w, r)
		}, stdout: "stored image direct: 2b7c3f6e-8a51-4d2e-9f0a-1c2d3e4f5a6b (kernel 1.0 kB, initramfs 2.0 kB, sha256-bbbbbbbbbbbb)\n",
			stderr: "uploading vmlinuz and initrd.img\nuploaded ", check: func(t *testing.T, r recorded) {
				if r.Path != "/v1/images/kernel" || r.Query != "name=direct" || !strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data; boundary=") {
					t.Errorf("request %s?%s %v", r.Path, r.Query, r.Header)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI(t, tc.handler)
			useAPI(t, api)
			out, errOut, code := enjinIn(t, "", tc.args...)
			if code != tc.code || !strings.HasPrefix(out, tc.stdout) || (tc.stdout == "" && out != "") {
				t.Fatalf("exit %d, stdout %q; want %d, %q (stderr %q)", code, out, tc.code, tc.stdout, errOut)
			}
			if !strings.HasPrefix(errOut, tc.stderr) && !(code == 1 && strings.HasSuffix(errOut, tc.stderr)) || tc.stderr == "" && errOut != "" {
				t.Errorf("stderr %q; want %q", errOut, tc.stderr)
			}
			if code == 1 && strings.Count(strings.TrimPrefix(errOut, progress), "\n") != 1 {
				t.Errorf("the failure is not one line: %q", errOut)
			}
			if reqs := api.requests(); tc.check != nil && (len(reqs) != 1 || func() bool { tc.check(t, reqs[0]); return false }()) {
				t.Errorf("%d requests; want 1", len(reqs))
			}
		})
	}
}

func TestImagesLsShowRm(t *testing.T) {
	handler := func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "GET" && r.URL.Path == "/v1/images" && r.URL.RawQuery == "name=debian&public=1":
			answer(200, `{"images":[`+diskJSON+`]}`)(w, r)
		case r.Method == "GET" && r.URL.Path == "/v1/images" && r.URL.RawQuery == "name=tools&tenant=acme":
			answer(200, `{"images":[`+toolsJSON+`]}`)(w, r)
		case r.Method == "GET" && r.URL.Path == "/v1/images" && (r.URL.RawQuery == "" || r.URL.RawQuery == "tenant=acme"):
			answer(200, `{"images":[`+diskJSON+`,`+toolsJSON+`,`+kernJSON+`]}`)(w, r)
		case r.Method == "GET" && r.URL.Path == "/v1/images":
			answer(200, `{"images":[]}`)(w, r)
		case r.Method == "GET" && r.URL.Path == "/v1/images/"+imageID:
			answer(200, diskJSON)(w, r)
		case r.Method == "DELETE" && strings.HasPrefix(r.URL.Path, "/v1/images/"):
			w.WriteHeader(204)
		default:
			answer(404, `{"error":"no such image","code":"not_found"}`)(w, r)
		}
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stdout []string // each must appear
		reqs   []string // METHOD path?query, in order
	}{
		{[]string{"images", "ls"}, 0, []string{"IMAGE", "debian  ", "acme/tools", "direct", "4.2 MB", "-  ", "sha256-0123456789ab", imageID},
			[]string{"GET /v1/images?"}},
		{[]string{"images", "ls", "--tenant", "acme", "-o", "json"}, 0, []string{`"images": [`, `"name": "tools"`}, []string{"GET /v1/images?tenant=acme"}},
		{[]string{"images", "ls", "--public"}, 0, []string{"IMAGE"}, []string{"GET /v1/images?public=1"}},
		{[]string{"images", "show", imageID}, 0, []string{"id   ", imageID, "owner ", "public", "virtual size", "4194304 bytes", "uploaded as raw"},
			[]string{"GET /v1/images/" + imageID + "?"}},
		{[]string{"images", "show", strings.ToUpper(imageID), "-o", "json"}, 0, []string{`"digest": "sha256-0123`}, []string{"GET /v1/images/" + imageID + "?"}},
		{[]string{"images", "show", "debian"}, 0, []string{"name ", "debian"}, []string{"GET /v1/images?name=debian&public=1"}},
		{[]string{"images", "show", "acme/tools"}, 0, []string{"tenant acme"}, []string{"GET /v1/images?name=tools&tenant=acme"}},
		{[]string{"images", "show", "acme/nothing"}, 1, nil, []string{"GET /v1/images?name=nothing&tenant=acme"}},
		{[]string{"images", "rm", "acme/tools"}, 0, []string{"deleted image acme/tools (1b7c3f6e-8a51-4d2e-9f0a-1c2d3e4f5a6b)\n"},
			[]string{"GET /v1/images?name=tools&tenant=acme", "DELETE /v1/images/1b7c3f6e-8a51-4d2e-9f0a-1c2d3e4f5a6b?"}},
		{[]string{"images", "rm", imageID}, 0, []string{"deleted image debian"}, []string{"GET /v1/images/" + imageID + "?", "DELETE /v1/images/" + imageID + "?"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			api := newFakeAPI(t, handler)
			useAPI(t, api)
			out, errOut, code := enjinIn(t, "", tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d (stderr %q); want %d", code, errOut, tc.code)
			}
			if code != 0 && (strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "no image acme/nothing")) {
				t.Errorf("stderr %q: want one line saying there is no such image", errOut)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			var got []string
			for _, r := range api.requests() {
				got = append(got, r.Method+" "+r.Path+"?"+r.Query)
			}
			if strings.Join(got, "\n") != strings.Join(tc.reqs, "\n") {
				t.Errorf("requests %q; want %q", got, tc.reqs)
			}
		})
	}
}

func TestImagesUsageErrors(t *testing.T) {
	f := fileOf(t, "disk.img", []byte("x"))
	for _, args := range [][]string{
		{"images", "upload", f, "--format", "raw"},
		{"images", "upload", f, "--name", "Big Disk", "--format", "raw"},
		{"images", "upload", f, "--name", imageID, "--format", "raw"},
		{"images", "upload", f, "--name", "d"},
		{"images", "upload", f, "--name", "d", "--format", "vmdk"},
		{"images", "upload", "--name", "d", "--format", "raw"},
		{"images", "upload", f, "g", "--name", "d", "--format", "raw"},
		{"images", "upload", f, "--name", "d", "--format", "raw", "--tenant", "A_B"},
		{"images", "upload", "--kernel", f, "--name", "k"},
		{"images", "upload", "--kernel", f, "--initrd", f, "--name", "k", "--format", "raw"},
		{"images", "upload", f, "--kernel", f, "--initrd", f, "--name", "k"},
		{"images", "ls", "extra"},
		{"images", "ls", "--tenant", "acme", "--public"},
		{"images", "show"},
		{"images", "show", "a/b/c"},
		{"images", "rm", "Not A Name"},
		{"images", "rm", "a", "b"},
		{"images", "bogus"},
	} {
		_, errOut, code := enjinIn(t, "", args...)
		if code != 2 || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "enjin: ") {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and one line", args, code, errOut)
		}
	}
}
