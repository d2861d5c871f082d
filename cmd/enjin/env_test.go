package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestEnvShow(t *testing.T) {
	api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("reveal") == "1" {
			io.WriteString(w, `{"env":{"TOKEN":"s3cret","DEBUG":"1","A_URL":"http://x/?a=b"},"masked":false}`)
			return
		}
		io.WriteString(w, `{"env":{"TOKEN":"•••","DEBUG":"•••","A_URL":"•••"},"masked":true}`)
	})
	useAPI(t, api)
	for _, tc := range []struct {
		args      []string
		query     string
		stdout    string
		stderrHas string
	}{
		{[]string{"apps", "env", "acme/hello"}, "", "A_URL=•••\nDEBUG=•••\nTOKEN=•••\n", "masked"},
		{[]string{"apps", "env", "--reveal", "acme/hello"}, "reveal=1", "A_URL=http://x/?a=b\nDEBUG=1\nTOKEN=s3cret\n", ""},
		{[]string{"apps", "env", "acme/hello", "-o", "json"}, "", `"masked": true`, ""},
	} {
		before := len(api.requests())
		out, errOut, code := enjinIn(t, "", tc.args...)
		if code != 0 || (tc.stdout != out && !strings.Contains(out, tc.stdout)) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %q", tc.args, code, out, errOut, tc.stdout)
		}
		if tc.stderrHas == "" && errOut != "" || !strings.Contains(errOut, tc.stderrHas) {
			t.Errorf("%q: stderr %q; want %q", tc.args, errOut, tc.stderrHas)
		}
		r := api.requests()[before:]
		if len(r) != 1 || r[0].Method != "GET" || r[0].Path != "/v1/tenants/acme/apps/hello/env" || r[0].Query != tc.query {
			t.Errorf("%q: requests %+v; want GET …/env?%s", tc.args, r, tc.query)
		}
	}
}

func TestEnvChange(t *testing.T) {
	api := newFakeAPI(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"number":7,"digest":"sha256-00","status":"live"}`)
	})
	useAPI(t, api)
	for _, tc := range []struct {
		args []string
		body string
		out  string
	}{
		{[]string{"apps", "env", "acme/hello", "A=1", "B=x=y", "--unset", "C"}, `{"set":{"A":"1","B":"x=y"},"unset":["C"]}`, "env changed: release 7\n"},
		{[]string{"apps", "env", "acme/hello", "--unset", "C", "--unset", "D", "--unset", "C"}, `{"set":{},"unset":["C","D"]}`, "env changed: release 7\n"},
		{[]string{"apps", "env", "acme/hello", "EMPTY="}, `{"set":{"EMPTY":""},"unset":[]}`, "env changed: release 7\n"},
		{[]string{"apps", "env", "acme/hello", "A=1", "-o", "json"}, `{"set":{"A":"1"},"unset":[]}`, `"number": 7`},
	} {
		before := len(api.requests())
		out, errOut, code := enjinIn(t, "", tc.args...)
		if code != 0 || !strings.Contains(out, tc.out) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %q", tc.args, code, out, errOut, tc.out)
		}
		r := api.requests()[before:]
		if len(r) != 1 || r[0].Method != "PATCH" || r[0].Path != "/v1/tenants/acme/apps/hello/env" || strings.TrimSpace(r[0].Body) != tc.body ||
			r[0].Header.Get("Content-Type") != "application/json" {
			t.Errorf("%q: requests %+v; want PATCH …/env %s", tc.args, r, tc.body)
		}
	}
}

func TestEnvRefusesBadChanges(t *testing.T) {
	api := newFakeAPI(t, nil)
	useAPI(t, api)
	for _, args := range [][]string{
		{"apps", "env", "acme/hello", "A=1", "--unset", "A"},
		{"apps", "env", "acme/hello", "--unset", "A", "A=2"},
		{"apps", "env", "acme/hello", "A"},
		{"apps", "env", "acme/hello", "A=1", "A=2"},
		{"apps", "env", "acme/hello", "--unset", "A=1"},
	} {
		_, errOut, code := enjinIn(t, "", args...)
		if code != 2 || !strings.HasPrefix(errOut, "enjin: apps env: ") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q; want a usage error", args, code, errOut)
		}
	}
	if r := api.requests(); len(r) != 0 {
		t.Errorf("a refused change was sent: %+v", r)
	}
}
