package api_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"enjin/services/api"
)

// FuzzDecode feeds the request decoders — every route's body, If-Match, every route's query
// parsing — arbitrary input. They must not panic, must refuse with a 4xx, and what they
// accept must re-encode to a body they accept again, unchanged.
func FuzzDecode(f *testing.F) {
	for _, tp := range templates {
		f.Add([]byte(tp.body), `"1"`, "ring=1&metadata.k=v")
	}
	for _, s := range []string{`{}`, ``, `{"metadata":{"a":[1,{"b":null}]}}`, `{"ring":0,"type":"row","parents":[]}`,
		`{"label":"\u0000"}`, `{"label":"\ud800"}`, "{\"label\":\"\xff\"}", `{"ttl_seconds":86400}`, `{"role":"primary"}`,
		`{"replicas":1e2}`, `{"a":1} {}`, strings.Repeat("[", 1000), `{"metadata":` + strings.Repeat(`{"a":`, 20) + `1` + strings.Repeat("}", 21)} {
		f.Add([]byte(s), `W/"2"`, "limit=10&after=n1;x")
	}
	f.Add([]byte(`{"failed":"n1"}`), `99999999999999999999`, "%zz&before=0")
	kinds := api.BodyKinds()
	f.Fuzz(func(t *testing.T, body []byte, ifMatch, query string) {
		for _, kind := range kinds {
			v, err := api.DecodeBody(kind, body)
			if err != nil {
				if s := api.Status(err); s < 400 || s > 499 {
					t.Fatalf("%s: refused with status %d (%v), want 4xx", kind, s, err)
				}
				continue
			}
			enc, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%s: accepted %q but cannot re-encode it: %v", kind, body, err)
			}
			v2, err := api.DecodeBody(kind, enc)
			if err != nil {
				t.Fatalf("%s: accepted %q, re-encoded as %s, which is refused: %v", kind, body, enc, err)
			}
			if enc2, _ := json.Marshal(v2); !bytes.Equal(enc, enc2) {
				t.Fatalf("%s: %q decodes to %s, then to %s", kind, body, enc, enc2)
			}
		}
		if v, err := api.ParseIfMatch(ifMatch); err != nil {
			if s := api.Status(err); s != 400 {
				t.Fatalf("If-Match %q: status %d, want 400", ifMatch, s)
			}
		} else if v2, err := api.ParseIfMatch(api.ETag(v)); err != nil || v2 != v || v < 1 {
			t.Fatalf("If-Match %q: version %d, which as an ETag reads back as %d (%v)", ifMatch, v, v2, err)
		}
		for _, err := range api.ParseQueries(query) {
			if s := api.Status(err); s != 400 {
				t.Fatalf("query %q: status %d (%v), want 400", query, s, err)
			}
		}
	})
}
