package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"enjin"
	"enjin/keys"
	"enjin/services/api"
)

// pemCert makes a certificate for names valid from..until, signed by itself, with key (a
// new P-256 key if nil), and returns it and its key as PEM.
func pemCert(t testing.TB, key any, from, until time.Time, names ...string) (string, string) {
	t.Helper()
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: from, NotAfter: until}
	var pub any
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		pub = &k.PublicKey
	case *rsa.PrivateKey:
		pub = &k.PublicKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	var kb []byte
	var typ string
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		kb, err = x509.MarshalECPrivateKey(k)
		typ = "EC PRIVATE KEY"
	case *rsa.PrivateKey:
		kb, typ = x509.MarshalPKCS1PrivateKey(k), "RSA PRIVATE KEY"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: kb}))
}

func domainBody(cert, key string, redirect bool) string {
	b, _ := json.Marshal(api.DomainPut{Cert: cert, Key: key, Redirect: redirect})
	return string(b)
}

// TestDomains: an app gets a custom domain only with a current certificate naming it and
// that certificate's key; answers never show the key; a domain under the apps domain, or
// another app's, is refused; a tenant reaches only its own apps' domains.
func TestDomains(t *testing.T) {
	chain, err := keys.Init(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, api.Timeouts{}, func(c *api.Config) { c.Sealer, c.AppsDomain = chain, "apps.test" })
	ctx := t.Context()
	if r := e.do(t, "POST", "/v1/nodes", []byte(`{"id":"h1","ring":1,"supervision_strategy":"external","observation_strategy":"self"}`), "Authorization", asAdmin); r.status != 201 {
		t.Fatalf("register node: %d %s", r.status, r.body)
	}
	for _, ta := range [][2]string{{"acme", "web"}, {"acme", "blog"}, {"evil", "site"}} {
		e.do(t, "POST", "/v1/tenants", []byte(`{"name":"`+ta[0]+`"}`), "Authorization", asAdmin)
		if err := e.store.AddTenantHost(ctx, enjin.TenantID(ta[0]), "h1", "KEY"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.PlaceApp(ctx, enjin.TenantID(ta[0]), ta[1], "h1", nil); err != nil {
			t.Fatal(err)
		}
	}
	r := e.do(t, "POST", "/v1/tenants/evil/tokens", []byte(`{"name":"ci"}`), "Authorization", asAdmin)
	asEvil := "Bearer " + str(r.json, "token")

	now := time.Now()
	good, goodKey := pemCert(t, nil, now.Add(-time.Hour), now.Add(24*time.Hour), "www.example.test", "example.test")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaCert, rsaPEM := pemCert(t, rsaKey, now.Add(-time.Hour), now.Add(24*time.Hour), "rsa.example.test")
	_, otherKey := pemCert(t, nil, now.Add(-time.Hour), now.Add(time.Hour), "www.example.test")
	expired, expiredKey := pemCert(t, nil, now.Add(-48*time.Hour), now.Add(-time.Hour), "www.example.test")
	appsCert, appsKey := pemCert(t, nil, now.Add(-time.Hour), now.Add(time.Hour), "x.acme.apps.test")
	evilCert, evilKey := pemCert(t, nil, now.Add(-time.Hour), now.Add(time.Hour), "www.example.test", "evil.example.test")
	path := "/v1/tenants/acme/apps/web/domains/"
	for _, tc := range []struct {
		name, method, path, body, auth string
		status                         int
		code                           string
	}{
		{"bad syntax", "PUT", path + "www..example.test", domainBody(good, goodKey, false), asAdmin, 400, "bad_id"},
		{"wildcard", "PUT", path + "*.example.test", domainBody(good, goodKey, false), asAdmin, 400, "bad_id"},
		{"one label", "PUT", path + "localhost", domainBody(good, goodKey, false), asAdmin, 400, "bad_id"},
		{"an address", "PUT", path + "10.0.0.1", domainBody(good, goodKey, false), asAdmin, 400, "bad_id"},
		{"hyphen edge", "PUT", path + "-www.example.test", domainBody(good, goodKey, false), asAdmin, 400, "bad_id"},
		{"apps domain", "PUT", path + "x.acme.apps.test", domainBody(appsCert, appsKey, false), asAdmin, 422, "apps_domain"},
		{"apps domain itself", "PUT", path + "APPS.test", domainBody(appsCert, appsKey, false), asAdmin, 422, "apps_domain"},
		{"no pem", "PUT", path + "www.example.test", domainBody("hello", goodKey, false), asAdmin, 422, "bad_cert"},
		{"junk der", "PUT", path + "www.example.test", domainBody(strings.Replace(good, "MII", "MIA", 1), goodKey, false), asAdmin, 422, "bad_cert"},
		{"key as cert", "PUT", path + "www.example.test", domainBody(goodKey, goodKey, false), asAdmin, 422, "bad_cert"},
		{"no key", "PUT", path + "www.example.test", domainBody(good, "nope", false), asAdmin, 422, "bad_key"},
		{"other key", "PUT", path + "www.example.test", domainBody(good, otherKey, false), asAdmin, 422, "key_mismatch"},
		{"not covering", "PUT", path + "shop.example.test", domainBody(good, goodKey, false), asAdmin, 422, "cert_name"},
		{"expired", "PUT", path + "www.example.test", domainBody(expired, expiredKey, false), asAdmin, 422, "cert_expired"},
		{"oversized", "PUT", path + "www.example.test", domainBody(good+strings.Repeat("x", 70<<10), goodKey, false), asAdmin, 413, "too_large"},
		{"reader", "PUT", path + "www.example.test", domainBody(good, goodKey, false), asBob, 403, "forbidden"},
		{"no app", "PUT", "/v1/tenants/acme/apps/nosuch/domains/www.example.test", domainBody(good, goodKey, false), asAdmin, 404, "not_found"},
		{"added", "PUT", path + "WWW.Example.Test.", domainBody(good, goodKey, true), asAdmin, 200, ""},
		{"renewed", "PUT", path + "www.example.test", domainBody(good, goodKey, false), asAdmin, 200, ""},
		{"rsa pkcs1", "PUT", "/v1/tenants/acme/apps/blog/domains/rsa.example.test", domainBody(rsaCert, rsaPEM, false), asAdmin, 200, ""},
		{"another app of the tenant", "PUT", "/v1/tenants/acme/apps/blog/domains/www.example.test", domainBody(good, goodKey, false), asAdmin, 409, "exists"},
		{"hostile tenant takes it", "PUT", "/v1/tenants/evil/apps/site/domains/www.example.test", domainBody(evilCert, evilKey, false), asEvil, 409, "exists"},
		{"hostile tenant on another's app", "PUT", path + "evil.example.test", domainBody(evilCert, evilKey, false), asEvil, 403, "forbidden"},
		{"hostile tenant removes it", "DELETE", "/v1/tenants/evil/apps/site/domains/www.example.test", "", asEvil, 404, "not_found"},
		{"hostile tenant lists another's", "GET", "/v1/tenants/acme/domains", "", asEvil, 403, "forbidden"},
		{"hostile tenant adds its own", "PUT", "/v1/tenants/evil/apps/site/domains/evil.example.test", domainBody(evilCert, evilKey, false), asEvil, 200, ""},
	} {
		r := e.do(t, tc.method, tc.path, []byte(tc.body), "Authorization", tc.auth, "Content-Type", "application/json")
		if r.status != tc.status || str(r.json, "code") != tc.code || r.status >= 400 && str(r.json, "error") == "" {
			t.Errorf("%s: got %d %s; want %d %q", tc.name, r.status, trunc(string(r.body), 300), tc.status, tc.code)
		}
	}
	r = e.do(t, "GET", "/v1/tenants/acme/domains", nil, "Authorization", asBob)
	if r.status != 200 || strings.Contains(string(r.body), "PRIVATE") || strings.Contains(string(r.body), "BEGIN") {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	var list struct{ Domains []map[string]any }
	json.Unmarshal(r.body, &list)
	if len(list.Domains) != 2 || list.Domains[1]["domain"] != "www.example.test" || list.Domains[1]["app"] != "web" ||
		list.Domains[1]["redirect"] != false || len(str(list.Domains[1], "fingerprint")) != 64 || str(list.Domains[1], "not_after") == "" {
		t.Fatalf("list: %s", r.body)
	}
	certs, err := e.store.DomainCerts(ctx)
	if err != nil || len(certs) != 3 {
		t.Fatalf("domain certs: %v %v", certs, err)
	}
	for _, c := range certs {
		if strings.Contains(string(c.KeySealed), "PRIVATE") {
			t.Errorf("%s: the key is stored in the clear", c.Domain)
		}
		if k, err := chain.Unseal(api.DomainKeyLabel(c.Domain), c.KeySealed); err != nil || !strings.Contains(string(k), "PRIVATE KEY") {
			t.Errorf("%s: sealed key does not open: %v", c.Domain, err)
		}
	}
	if r := e.do(t, "DELETE", path+"www.example.test", nil, "Authorization", asAdmin); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := e.do(t, "PUT", "/v1/tenants/evil/apps/site/domains/www.example.test", []byte(domainBody(evilCert, evilKey, false)), "Authorization", asEvil); r.status != 200 {
		t.Fatalf("a freed domain: %d %s", r.status, r.body)
	}

	// Two tenants racing for one domain: one has it, the other gets 409.
	raceCert, raceKey := pemCert(t, nil, now.Add(-time.Hour), now.Add(time.Hour), "race.example.test")
	statuses := make(chan int, 2)
	for _, p := range [][2]string{{"/v1/tenants/acme/apps/web/domains/race.example.test", asAdmin}, {"/v1/tenants/evil/apps/site/domains/race.example.test", asEvil}} {
		go func() { // ends with its request
			statuses <- e.do(t, "PUT", p[0], []byte(domainBody(raceCert, raceKey, false)), "Authorization", p[1]).status
		}()
	}
	if a, b := <-statuses, <-statuses; a+b != 200+409 {
		t.Fatalf("two tenants racing for a domain: %d and %d, want 200 and 409", a, b)
	}
}

// FuzzDomainInput feeds the custom domain checks arbitrary names, certificates and keys: they
// must not panic; a name accepted is lower-case ASCII without a wildcard, accepted again
// unchanged; a certificate or key refused is refused with a 4xx.
func FuzzDomainInput(f *testing.F) {
	now := time.Now()
	cert, key := pemCert(f, nil, now.Add(-time.Hour), now.Add(time.Hour), "www.example.test")
	f.Add("www.example.test", cert, key)
	f.Add("Bücher.Example.", cert, "")
	f.Add("xn--bcher-kva.example", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", key)
	f.Add("*.example.test", key, cert)
	f.Add("xn--zz.example", cert+"junk", key+key)
	f.Fuzz(func(t *testing.T, name, cert, key string) {
		if got, ok := api.CheckDomain(name); ok {
			if strings.ContainsAny(got, "*_ ") || strings.ToLower(got) != got || strings.ContainsFunc(got, func(r rune) bool { return r > 0x7f }) {
				t.Fatalf("%q accepted as %q", name, got)
			}
			if again, ok := api.CheckDomain(got); !ok || again != got {
				t.Fatalf("%q accepted as %q, which reads again as %q %v", name, got, again, ok)
			}
		}
		if s := api.CheckCertKey(cert, key); s != 0 && (s < 400 || s > 499) {
			t.Fatalf("certificate or key refused with %d", s)
		}
	})
}
