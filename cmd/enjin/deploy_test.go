package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"enjin/services/apphost"
)

const liveRelease = `{"number":3,"digest":"sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",` +
	`"manifest":{"procfile":{"web":"./app"}},"created":"2026-01-02T03:04:05Z","status":"live"}`

// streamDeploy answers a deploy with the events, as the deploy stream does; asked to deploy
// a package again (package=), it answers 404, as a node does for a package the app never had.
func streamDeploy(events ...string) http.HandlerFunc {
	return lacksPackages(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/gzip" || r.Header.Get("Accept") != "application/x-ndjson" {
			http.Error(w, `{"error":"bad headers"}`, 415)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		for _, e := range events {
			fmt.Fprintln(w, e)
			w.(http.Flusher).Flush()
		}
	})
}

// lacksPackages answers 404 to a deploy of a package (package=) and to the question of which
// files the app has — as for an app's first deploy — and passes the rest to h.
func lacksPackages(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("package") || strings.HasSuffix(r.URL.Path, "/files") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			io.WriteString(w, `{"error":"no release of package","code":"not_found"}`)
			return
		}
		h(w, r)
	}
}

func TestDeploy(t *testing.T) {
	progress := []string{"packed 2 files, 0.0 MB\n", "uploaded 0.0 MB\n", "release 3 starting (2 instances)\n", "release 3 healthy\n", "traffic moved to release 3\n"}
	deployed := "deployed acme/hello release 3 (sha256-0123456789ab)\n"
	for _, tc := range []struct {
		name      string
		handler   http.HandlerFunc
		quiet     bool
		code      int
		stdout    string
		stderr    []string // each in order
		notStderr []string
	}{
		{name: "live", handler: streamDeploy(`{"event":"unpacked","release":3,"files":2,"bytes":40}`, ``,
			`{"event":"starting","release":3,"instances":2}`, `{"event":"rebalanced","release":3}`, `   `,
			`{"event":"healthy","release":3}`, `{"event":"live","release":`+liveRelease+`}`),
			stdout: deployed, stderr: progress},
		{name: "quiet", quiet: true, handler: streamDeploy(`{"event":"starting","release":3,"instances":2}`, `{"event":"live","release":`+liveRelease+`}`),
			stdout: deployed},
		{name: "failed", handler: streamDeploy(`{"event":"starting","release":3,"instances":1}`,
			`{"event":"failed","release":3,"error":"release 3 not healthy within 60s","reason":{"instance":"hello-3-web-1","exit":"exit status 1","logs":["listening on :8080","panic: no database"]}}`),
			code: 1, stderr: []string{"release 3 starting (1 instance)\n", "exit status 1\n", "    listening on :8080\n", "    panic: no database\n",
				"enjin: deploy acme/hello: release 3 not healthy within 60s\n"}},
		{name: "failed quietly", quiet: true, handler: streamDeploy(`{"event":"failed","release":3,"error":"out of memory","reason":{"exit":"killed: out of memory","logs":["allocating"]}}`),
			code: 1, stderr: []string{"killed: out of memory\n", "    allocating\n", "enjin: deploy acme/hello: out of memory\n"}, notStderr: []string{"packed", "uploaded"}},
		{name: "refused", handler: lacksPackages(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			io.WriteString(w, `{"error":"unknown process type in instances: wrker","code":"bad_manifest","field":"enjin.json"}`)
		}), code: 1, stderr: []string{"enjin: deploy acme/hello: enjin.json: unknown process type in instances: wrker (400)\n"}, notStderr: []string{"uploaded"}},
		{name: "cut after starting", handler: streamDeploy(`{"event":"starting","release":3,"instances":2}`),
			code: 1, stderr: []string{"enjin: deploy acme/hello: the connection closed before the release was live or failed\n"}, notStderr: []string{"EOF"}},
		{name: "cut mid-line", handler: lacksPackages(cutMidLine), code: 1,
			stderr: []string{"enjin: deploy acme/hello: the connection closed before the release was live or failed\n"}, notStderr: []string{"EOF"}},
		{name: "legacy 201", handler: lacksPackages(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(201)
			io.WriteString(w, liveRelease)
		}), stdout: deployed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI(t, tc.handler)
			useAPI(t, api)
			args := []string{"apps", "deploy", appDir(t), "--tenant", "acme", "--name", "hello"}
			if tc.quiet {
				args = append(args, "-q")
			}
			out, errOut, code := enjinIn(t, "", args...)
			if code != tc.code || out != tc.stdout {
				t.Fatalf("exit %d, stdout %q; want %d, %q (stderr %q)", code, out, tc.code, tc.stdout, errOut)
			}
			rest := errOut
			for _, w := range tc.stderr {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("stderr %q: no %q (in order)", errOut, w)
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tc.notStderr {
				if strings.Contains(errOut, w) {
					t.Errorf("stderr %q has %q", errOut, w)
				}
			}
			if tc.quiet && tc.code == 0 && errOut != "" {
				t.Errorf("-q: stderr %q", errOut)
			}
			// First the package, by digest, with no body; then which files the app has; the
			// node lacks both: then the bundle.
			if r := api.requests(); len(r) != 3 || r[0].Method != "POST" || r[0].Path != "/v1/tenants/acme/apps/hello/releases" ||
				!strings.HasPrefix(r[0].Query, "package=sha256-") || r[0].Body != "" || r[1].Path != "/v1/tenants/acme/apps/hello/files" ||
				r[2].Query != "" || len(r[2].Body) < 20 {
				t.Errorf("requests %+v", r)
			}
		})
	}
}

// cutMidLine sends the start of an event and drops the connection.
func cutMidLine(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	io.WriteString(w, `{"event":"starting","release":3,"instances":2}`+"\n"+`{"event":"li`)
	w.(http.Flusher).Flush()
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		conn.Close()
	}
}

func TestDeployPrintsURL(t *testing.T) {
	api := newFakeAPI(t, streamDeploy(`{"event":"live","release":`+liveRelease+`}`))
	state := filepath.Join(t.TempDir(), "state")
	fakeCloud(t, state, api.URL, "127.0.0.1:7080")
	out, errOut, code := enjinIn(t, "", "apps", "deploy", "acme/hello", appDir(t), "--state-dir", state)
	want := "deployed acme/hello release 3 (sha256-0123456789ab)\n" +
		"url: http://hello.acme.apps.test/  (router 127.0.0.1:7080: curl -H 'Host: hello.acme.apps.test' http://127.0.0.1:7080/)\n"
	if code != 0 || out != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want %q", code, out, errOut, want)
	}
	if r := api.requests(); len(r) != 3 || r[2].Header.Get("Authorization") != "Bearer admin-secret" {
		t.Errorf("requests %+v; want one with the admin token of the state dir", r)
	}
}

func TestDeployDefaultsToThisDirectory(t *testing.T) {
	api := newFakeAPI(t, streamDeploy(`{"event":"live","release":`+liveRelease+`}`))
	useAPI(t, api)
	t.Chdir(appDir(t))
	if _, errOut, code := enjinIn(t, "", "apps", "deploy", "acme/hello"); code != 0 || !strings.Contains(errOut, "packed 2 files") {
		t.Fatalf("exit %d, stderr %q; want . packed", code, errOut)
	}
}

// A directory deployed before, unchanged: the node has its package, so the deploy names it
// by digest (TreeDigest's) and sends no byte of it.
func TestDeployUnchangedSendsNothing(t *testing.T) {
	dir := appDir(t)
	digest, err := apphost.TreeDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("package") != digest {
			http.Error(w, `{"error":"want the package"}`, 404)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		fmt.Fprintln(w, `{"event":"live","release":`+liveRelease+`}`)
	})
	useAPI(t, api)
	out, errOut, code := enjinIn(t, "", "apps", "deploy", "acme/hello", dir)
	if code != 0 || !strings.Contains(out, "deployed acme/hello release 3") || !strings.Contains(errOut, "nothing uploaded") || strings.Contains(errOut, "packed") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if r := api.requests(); len(r) != 1 || r[0].Body != "" || r[0].Query != "package="+digest {
		t.Fatalf("requests %+v: want one, naming the package, with no body", r)
	}
	t.Logf("unchanged redeploy: 1 request, 0 bytes of body (package %s)", digest)
}

// A directory with one file changed since the app's last release sends that file alone: the
// node says it has the others' digests, and the bundle carries one file's content and
// references for the rest.
func TestDeployOneFileChangedSendsOne(t *testing.T) {
	dir := appDir(t)
	os.WriteFile(filepath.Join(dir, "big"), bytes.Repeat([]byte("unchanged data "), 100_000), 0o644)
	_, before, err := apphost.Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "Procfile"), []byte("web: ./app --changed\n"), 0o644)
	var have []string
	for _, f := range before {
		if f.Path != "Procfile" {
			have = append(have, f.Digest)
		}
	}
	api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Query().Has("package"):
			http.Error(w, `{"error":"no release of it","code":"not_found"}`, 404)
		case strings.HasSuffix(r.URL.Path, "/files"):
			json.NewEncoder(w).Encode(map[string]any{"have": have})
		case r.URL.Query().Get("delta") == "1":
			w.Header().Set("Content-Type", "application/x-ndjson")
			fmt.Fprintln(w, `{"event":"live","release":`+liveRelease+`}`)
		default:
			http.Error(w, `{"error":"want a delta"}`, 400)
		}
	})
	useAPI(t, api)
	out, errOut, code := enjinIn(t, "", "apps", "deploy", "acme/hello", dir)
	if code != 0 || !strings.Contains(out, "release 3") || !strings.Contains(errOut, "packed 3 files (1 changed)") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	r := api.requests()
	if len(r) != 3 || r[2].Query != "delta=1" {
		t.Fatalf("requests %+v", r)
	}
	zr, err := gzip.NewReader(strings.NewReader(r[2].Body))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var whole []string
	refs := 0
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		switch {
		case h.PAXRecords["ENJIN.sha256"] != "":
			refs++
		case h.Typeflag == tar.TypeReg:
			whole = append(whole, h.Name)
		}
	}
	if len(whole) != 1 || whole[0] != "Procfile" || refs != 2 {
		t.Fatalf("the delta carried %v whole and %d references; want Procfile alone, and 2", whole, refs)
	}
	t.Logf("one file changed: %d bytes sent (the unchanged 1.5 MB file a reference)", len(r[2].Body))
}
