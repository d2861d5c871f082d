package api_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"enjin"
	"enjin/keys"
	"enjin/services/api"
)

// TestDomainsACME: a domain asks for an ACME certificate with {"acme": true}, exactly one of
// that and cert with key, and only on a cloud with an ACME server (422 acme_unconfigured
// elsewhere); it is then its app's (202, state pending) as an uploaded one is: another app
// cannot take it either way, its app's own upload takes it off ACME, and removing it frees it.
func TestDomainsACME(t *testing.T) {
	now := time.Now()
	good, goodKey := pemCert(t, nil, now.Add(-time.Hour), now.Add(24*time.Hour), "www.example.test")
	evilCert, evilKey := pemCert(t, nil, now.Add(-time.Hour), now.Add(time.Hour), "www.example.test", "evil.example.test")
	acmeBody := func(redirect bool) string {
		b, _ := json.Marshal(api.DomainPut{ACME: true, Redirect: redirect})
		return string(b)
	}
	path := "/v1/tenants/acme/apps/web/domains/"
	type step struct {
		name, method, path, body, auth string
		status                         int
		code                           string
	}
	run := func(t *testing.T, e *env, steps []step) {
		t.Helper()
		for _, tc := range steps {
			r := e.do(t, tc.method, tc.path, []byte(tc.body), "Authorization", tc.auth, "Content-Type", "application/json")
			if r.status != tc.status || str(r.json, "code") != tc.code || r.status >= 400 && str(r.json, "error") == "" {
				t.Errorf("%s: got %d %s; want %d %q", tc.name, r.status, trunc(string(r.body), 300), tc.status, tc.code)
			}
		}
	}
	setup := func(t *testing.T, acme bool) (*env, string) {
		chain, err := keys.Init(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		e := newEnvWith(t, api.Timeouts{}, func(c *api.Config) { c.Sealer, c.AppsDomain, c.ACME = chain, "apps.test", acme })
		if r := e.do(t, "POST", "/v1/nodes", []byte(`{"id":"h1","ring":1,"supervision_strategy":"external","observation_strategy":"self"}`), "Authorization", asAdmin); r.status != 201 {
			t.Fatalf("register node: %d %s", r.status, r.body)
		}
		for _, ta := range [][2]string{{"acme", "web"}, {"acme", "blog"}, {"evil", "site"}} {
			e.do(t, "POST", "/v1/tenants", []byte(`{"name":"`+ta[0]+`"}`), "Authorization", asAdmin)
			if err := e.store.AddTenantHost(t.Context(), enjin.TenantID(ta[0]), "h1", "KEY"); err != nil {
				t.Fatal(err)
			}
			if _, err := e.store.PlaceApp(t.Context(), enjin.TenantID(ta[0]), ta[1], "h1", nil); err != nil {
				t.Fatal(err)
			}
		}
		r := e.do(t, "POST", "/v1/tenants/evil/tokens", []byte(`{"name":"ci"}`), "Authorization", asAdmin)
		return e, "Bearer " + str(r.json, "token")
	}

	t.Run("not configured", func(t *testing.T) {
		e, _ := setup(t, false)
		run(t, e, []step{
			{"acme and cert", "PUT", path + "www.example.test", `{"acme":true,"cert":` + jsonStr(good) + `,"key":` + jsonStr(goodKey) + `}`, asAdmin, 422, "cert_or_acme"},
			{"acme and key", "PUT", path + "www.example.test", `{"acme":true,"key":` + jsonStr(goodKey) + `}`, asAdmin, 422, "cert_or_acme"},
			{"neither", "PUT", path + "www.example.test", `{"redirect":true}`, asAdmin, 422, "cert_or_acme"},
			{"cert without key", "PUT", path + "www.example.test", `{"cert":` + jsonStr(good) + `}`, asAdmin, 422, "cert_or_acme"},
			{"acme not configured", "PUT", path + "www.example.test", acmeBody(false), asAdmin, 422, "acme_unconfigured"},
			{"acme not a bool", "PUT", path + "www.example.test", `{"acme":"yes"}`, asAdmin, 400, "bad_json"},
			{"upload still works", "PUT", path + "www.example.test", domainBody(good, goodKey, false), asAdmin, 200, ""},
		})
	})

	t.Run("configured", func(t *testing.T) {
		e, asEvil := setup(t, true)
		r := e.do(t, "PUT", path+"WWW.example.test", []byte(acmeBody(true)), "Authorization", asAdmin, "Content-Type", "application/json")
		if r.status != 202 || str(r.json, "state") != "pending" || r.json["acme"] != true || str(r.json, "domain") != "www.example.test" || r.json["redirect"] != true {
			t.Fatalf("acme: got %d %s; want 202, state pending", r.status, r.body)
		}
		run(t, e, []step{
			{"acme and cert", "PUT", path + "www.example.test", `{"acme":true,"cert":` + jsonStr(good) + `}`, asAdmin, 422, "cert_or_acme"},
			{"another app of the tenant", "PUT", "/v1/tenants/acme/apps/blog/domains/www.example.test", acmeBody(false), asAdmin, 409, "exists"},
			{"hostile tenant asks acme", "PUT", "/v1/tenants/evil/apps/site/domains/www.example.test", acmeBody(false), asEvil, 409, "exists"},
			{"hostile tenant uploads", "PUT", "/v1/tenants/evil/apps/site/domains/www.example.test", domainBody(evilCert, evilKey, false), asEvil, 409, "exists"},
			{"hostile tenant removes", "DELETE", "/v1/tenants/evil/apps/site/domains/www.example.test", "", asEvil, 404, "not_found"},
			{"asked again", "PUT", path + "www.example.test", acmeBody(false), asAdmin, 202, ""},
			{"apps domain", "PUT", path + "x.acme.apps.test", acmeBody(false), asAdmin, 422, "apps_domain"},
			{"no app", "PUT", "/v1/tenants/acme/apps/nosuch/domains/shop.example.test", acmeBody(false), asAdmin, 404, "not_found"},
			{"reader", "PUT", path + "shop.example.test", acmeBody(false), asBob, 403, "forbidden"},
			{"uploaded one taken", "PUT", "/v1/tenants/evil/apps/site/domains/evil.example.test", domainBody(evilCert, evilKey, false), asEvil, 200, ""},
			{"hostile tenant on another's app", "PUT", path + "evil.example.test", acmeBody(false), asEvil, 403, "forbidden"},
			{"acme for another's uploaded, as admin on its own app", "PUT", "/v1/tenants/acme/apps/blog/domains/evil.example.test", acmeBody(false), asAdmin, 409, "exists"},
		})
		ds, err := e.store.ListDomains(t.Context(), "acme", "")
		if err != nil || len(ds) != 1 || !ds[0].ACME || ds[0].State != "pending" || ds[0].Redirect || ds[0].Fingerprint != "" {
			t.Fatalf("list: %+v %v; want www.example.test, acme, pending, no certificate", ds, err)
		}
		if certs, err := e.store.DomainCerts(t.Context()); err != nil || len(certs) != 1 || certs[0].Domain != "evil.example.test" {
			t.Fatalf("certificates sent to the routers: %+v %v; want only evil.example.test's", certs, err)
		}
		if r := e.do(t, "GET", "/v1/tenants/acme/apps/web/domains", nil, "Authorization", asBob); r.status != 200 || !strings.Contains(string(r.body), `"state":"pending"`) {
			t.Fatalf("list over the API: %d %s", r.status, r.body)
		}
		// The app's own upload takes the domain off ACME.
		run(t, e, []step{{"upload over acme", "PUT", path + "www.example.test", domainBody(good, goodKey, false), asAdmin, 200, ""}})
		if ds, _ := e.store.ListDomains(t.Context(), "acme", "web"); len(ds) != 1 || ds[0].ACME || ds[0].Fingerprint == "" {
			t.Fatalf("after an upload: %+v; want an uploaded certificate, not acme", ds)
		}
		if acme, _ := e.store.ACMEDomains(t.Context()); len(acme) != 0 {
			t.Fatalf("after an upload, still left to acme: %+v", acme)
		}
		// Removed, it is free for another.
		run(t, e, []step{
			{"back to acme", "PUT", path + "www.example.test", acmeBody(false), asAdmin, 202, ""},
			{"removed", "DELETE", path + "www.example.test", "", asAdmin, 204, ""},
			{"removed again", "DELETE", path + "www.example.test", "", asAdmin, 404, "not_found"},
			{"freed", "PUT", "/v1/tenants/evil/apps/site/domains/www.example.test", acmeBody(false), asEvil, 202, ""},
		})
	})
}

func jsonStr(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
