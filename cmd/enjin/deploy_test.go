package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

const liveRelease = `{"number":3,"digest":"sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",` +
	`"manifest":{"procfile":{"web":"./app"}},"created":"2026-01-02T03:04:05Z","status":"live"}`

// streamDeploy answers a deploy with the events, as the deploy stream does.
func streamDeploy(events ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/gzip" || r.Header.Get("Accept") != "application/x-ndjson" {
			http.Error(w, `{"error":"bad headers"}`, 415)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		for _, e := range events {
			fmt.Fprintln(w, e)
			w.(http.Flusher).Flush()
		}
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
		{name: "refused", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			io.WriteString(w, `{"error":"unknown process type in instances: wrker","code":"bad_manifest","field":"enjin.json"}`)
		}, code: 1, stderr: []string{"enjin: deploy acme/hello: enjin.json: unknown process type in instances: wrker (400)\n"}, notStderr: []string{"uploaded"}},
		{name: "cut after starting", handler: streamDeploy(`{"event":"starting","release":3,"instances":2}`),
			code: 1, stderr: []string{"enjin: deploy acme/hello: the connection closed before the release was live or failed\n"}, notStderr: []string{"EOF"}},
		{name: "cut mid-line", handler: cutMidLine, code: 1,
			stderr: []string{"enjin: deploy acme/hello: the connection closed before the release was live or failed\n"}, notStderr: []string{"EOF"}},
		{name: "legacy 201", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(201)
			io.WriteString(w, liveRelease)
		}, stdout: deployed},
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
			if r := api.requests(); len(r) != 1 || r[0].Method != "POST" || r[0].Path != "/v1/tenants/acme/apps/hello/releases" || len(r[0].Body) < 20 {
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
	if r := api.requests(); len(r) != 1 || r[0].Header.Get("Authorization") != "Bearer admin-secret" {
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
