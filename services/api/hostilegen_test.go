package api_test

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"

	"enjin/services/api"
)

// gen makes hostile requests.
type gen struct {
	r   *rand.Rand
	ids map[string]string
}

// A template is a well-formed write, which the generator then breaks.
type template struct {
	method, path, body string
	versioned          bool // takes If-Match
}

var templates = []template{
	{"POST", "/v1/nodes", `{"id":"h{rand}","ring":1,"label":"x","supervision_strategy":"external","observation_strategy":"self","compartment":"{c1}","metadata":{"k":"v","n":[1,2.5,{"b":null}]}}`, false},
	{"PATCH", "/v1/nodes/{node}", `{"label":"y","metadata":{"a":[1,{"b":true}]}}`, true},
	{"DELETE", "/v1/nodes/{node}", ``, true},
	{"POST", "/v1/nodes/{node}/join-token", `{"ttl_seconds":60}`, false},
	{"POST", "/v1/join", `{"token":"abcdef","user_key":"UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4","attest_key":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`, false},
	{"POST", "/v1/creds/ops", `{"name":"ops-x"}`, false},
	{"POST", "/v1/compartments", `{"ring":1,"type":"rack","label":"r","parents":["{c1}"],"metadata":{"x":1}}`, false},
	{"PATCH", "/v1/compartments/{c2}", `{"label":"z","type":"row","parents":["{c1}"],"metadata":{}}`, true},
	{"DELETE", "/v1/compartments/{c2}", ``, true},
	{"POST", "/v1/tiers", `{"ring":1,"label":"t","replicas":1,"metadata":{"q":"r"}}`, false},
	{"PATCH", "/v1/tiers/{t1}", `{"label":"t2","replicas":2,"metadata":{"m":"n"}}`, true},
	{"DELETE", "/v1/tiers/{t1}", ``, true},
	{"PUT", "/v1/tiers/{t1}/members/{node}", `{"role":"replica"}`, false},
	{"DELETE", "/v1/tiers/{t1}/members/{node}", ``, false},
	{"POST", "/v1/tiers/{t1}/promote", `{"failed":"n1"}`, false},
}

var reads = []string{"/healthz", "/openapi.json", "/v1/nodes", "/v1/nodes/{node}", "/v1/nodes/{node}/observations",
	"/v1/compartments", "/v1/compartments/{c2}", "/v1/tiers", "/v1/tiers/{t1}", "/v1/history/node/{node}",
	"/v1/history/{kind}/{c1}"}

// request makes the i'th hostile request; i picks the kind so every kind is well represented.
func (g *gen) request(i int) hostile {
	kinds := []func() hostile{g.randomBody, g.deepNesting, g.tooLarge, g.badUTF8, g.randomRoute,
		g.authChaos, g.ifMatchChaos, g.queryChaos, g.mutated, g.mutated, g.contentTypes}
	return kinds[i%len(kinds)]()
}

func (g *gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func (g *gen) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.UintN(256))
	}
	return b
}

// write fills a template's path and returns it with the template, as the admin, with a
// plausible If-Match.
func (g *gen) write() (template, hostile) {
	tp := templates[g.r.IntN(len(templates))]
	h := hostile{method: tp.method, path: g.fill(tp.path), body: []byte(g.fill(tp.body))}
	h.hdr = append(h.hdr, [2]string{"Authorization", g.auth()}, [2]string{"Content-Type", "application/json"})
	if tp.versioned {
		h.hdr = append(h.hdr, [2]string{"If-Match", fmt.Sprintf(`"%d"`, 1+g.r.IntN(4))})
	}
	return tp, h
}

// fill replaces placeholders with real ids mostly, and with wrong ones sometimes.
func (g *gen) fill(s string) string {
	return strings.NewReplacer(
		"{rand}", fmt.Sprint(g.r.Uint32()),
		"{node}", g.pick("n1", "n2", "n3", "n1", "ghost", "N1", "-x", url.PathEscape(string(g.bytes(1+g.r.IntN(8))))),
		"{kind}", g.pick("node", "compartment", "tier", "widget", "", "%00"),
		"{c1}", g.ids["c1"], "{c2}", g.id("c2"), "{t1}", g.id("t1"), "{t2}", g.id("t2"),
	).Replace(s)
}

func (g *gen) id(name string) string {
	switch g.r.IntN(10) {
	case 0:
		return "0b7e3f1c-9a4d-4e1b-8c2f-6d5a4b3c2e1f" // well-formed, absent
	case 1:
		return url.PathEscape(string(g.bytes(1 + g.r.IntN(40))))
	case 2:
		return strings.ToUpper(g.ids[name])
	}
	return g.ids[name]
}

func (g *gen) auth() string {
	if g.r.IntN(10) == 0 {
		return g.pick(asBob, asWrong, asAlice)
	}
	return asAdmin
}

func (g *gen) randomBody() hostile {
	_, h := g.write()
	h.kind = "random body"
	h.body = g.bytes(1 + g.r.IntN(4096)) // at least one byte: the next line may set it
	if g.r.IntN(2) == 0 {
		h.body[0] = '{' // get past the first check more often
	}
	h.chunked = g.r.IntN(4) == 0
	return h
}

func (g *gen) deepNesting() hostile {
	_, h := g.write()
	h.kind = "deep nesting"
	n := 1 + g.r.IntN(100000)
	switch g.r.IntN(4) {
	case 0:
		h.body = []byte(strings.Repeat("[", 100000))
	case 1:
		h.body = []byte(`{"metadata":` + strings.Repeat(`{"a":`, n) + `1` + strings.Repeat("}", n) + `}`)
	case 2:
		h.body = []byte(`{"metadata":{"a":` + strings.Repeat(`[`, n) + strings.Repeat("]", n) + `}}`)
	default:
		h.body = []byte(`{"label":` + strings.Repeat(`{"x":[`, n/2))
	}
	return h
}

func (g *gen) tooLarge() hostile {
	_, h := g.write()
	h.kind = "too large"
	size := api.DefaultMaxBody + 1 + g.r.IntN(64<<10)
	if g.r.IntN(8) != 0 {
		size = g.r.IntN(api.DefaultMaxBody) // big, but within the limit
	}
	h.body = []byte(`{"label":"` + strings.Repeat("x", max(0, size-12)) + `"}`)
	h.chunked = g.r.IntN(2) == 0
	return h
}

var badUTF8 = []string{"\xff", "\xfe\xff", "\xc3", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80", "\xe2\x82"}

func (g *gen) badUTF8() hostile {
	_, h := g.write()
	h.kind = "bad UTF-8"
	at := g.r.IntN(len(h.body) + 1)
	h.body = []byte(string(h.body[:at]) + g.pick(badUTF8...) + string(h.body[at:]))
	return h
}

var methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "get", "X", "POSTX"}

func (g *gen) randomRoute() hostile {
	h := hostile{kind: "random route", method: g.pick(methods...)}
	var segs []string
	for range g.r.IntN(6) {
		segs = append(segs, g.pick("v1", "v2", "nodes", "compartments", "tiers", "members", "promote", "history",
			"join", "join-token", "creds", "ops", "observations", "{node}", "{c2}", "{t1}", "..", ".", "",
			url.PathEscape(string(g.bytes(g.r.IntN(12))))))
	}
	h.path = g.fill("/" + strings.Join(segs, "/"))
	h.hdr = [][2]string{{"Authorization", g.auth()}}
	if g.r.IntN(2) == 0 {
		h.body = g.bytes(g.r.IntN(256))
	}
	return h
}

func (g *gen) authChaos() hostile {
	_, h := g.write()
	h.kind = "auth chaos"
	h.hdr = h.hdr[1:] // drop the good one
	value := func() string {
		return g.pick("", "Bearer", "Bearer ", "Basic", "Basic ", "Negotiate abc", asWrong, asBadPw, asNobody,
			"Bearer "+adminToken+"x", "Bearer "+strings.Repeat("a", 8000), "Basic "+base64.StdEncoding.EncodeToString(g.bytes(20)),
			"Basic "+base64.StdEncoding.EncodeToString([]byte("alice")), "Basic !!!", "bearer\t"+adminToken,
			strings.Map(func(r rune) rune { // random bytes, minus what a header may not hold
				if r < ' ' || r == 0x7f {
					return 'x'
				}
				return r
			}, string(g.bytes(g.r.IntN(64)))))
	}
	switch g.r.IntN(3) {
	case 0: // none
	case 1:
		h.hdr = append(h.hdr, [2]string{"Authorization", asAdmin}, [2]string{"Authorization", value()})
	default:
		h.hdr = append(h.hdr, [2]string{"Authorization", value()})
	}
	return h
}

func (g *gen) ifMatchChaos() hostile {
	tp, h := g.write()
	for !tp.versioned {
		tp, h = g.write()
	}
	h.kind = "If-Match chaos"
	h.hdr = h.hdr[:2]
	for range g.r.IntN(3) {
		h.hdr = append(h.hdr, [2]string{"If-Match", g.pick(`*`, `W/"1"`, `"1", "2"`, `""`, `"`, `"-1"`, `"0"`, `"1e3"`, `" 1"`,
			`99999999999999999999`, `"9223372036854775807"`, `"abc"`, `1`, `"\xff"`, fmt.Sprint(g.r.Int64()),
			fmt.Sprintf(`"%d"`, g.r.IntN(10)), url.QueryEscape(string(g.bytes(8))))})
	}
	return h
}

func (g *gen) queryChaos() hostile {
	h := hostile{kind: "query chaos", method: "GET", path: g.fill(g.pick(reads...))}
	var parts []string
	for range g.r.IntN(6) {
		key := g.pick("ring", "state", "after", "limit", "before", "metadata.k", "metadata.", "metadata.%00", "metadata.%ff",
			"x", "", url.QueryEscape(string(g.bytes(6))))
		val := g.pick("0", "1", "2", "3", "-1", "up", "down", "n1", "N1", "1000", "10001", "0x10", "1e3",
			"99999999999999999999", "%ff", "%00", "%zz", "", url.QueryEscape(string(g.bytes(10))))
		parts = append(parts, key+"="+val)
	}
	sep := g.pick("&", "&", ";", "&&")
	h.path += "?" + strings.Join(parts, sep) + g.pick("", "", "%", "=", "&")
	h.hdr = [][2]string{{"Authorization", g.auth()}}
	return h
}

func (g *gen) mutated() hostile {
	_, h := g.write()
	h.kind = "mutated body"
	b := h.body
	for range 1 + g.r.IntN(4) {
		at := g.r.IntN(len(b) + 1)
		switch g.r.IntN(5) {
		case 0: // replace a byte
			if at < len(b) {
				b[at] = byte(g.r.UintN(256))
			}
		case 1: // delete a run
			end := min(len(b), at+g.r.IntN(8))
			b = append(b[:at:at], b[end:]...)
		case 2: // insert a token that decoders find awkward
			tok := g.pick(`\u0000`, `\ud800`, `1e999`, `-0`, `null`, `[`, `{`, `"`, `\`, `99999999999999999999999`,
				`true`, `,"x":1`, `,"label":null`, `,"metadata":{"a":"\u0000"}`, "\x00", `"\u00`)
			b = append(b[:at:at], append([]byte(tok), b[at:]...)...)
		case 3: // duplicate a run
			end := min(len(b), at+g.r.IntN(16))
			b = append(b[:end:end], b[at:]...)
		default: // truncate
			b = b[:at]
		}
	}
	h.body = b
	return h
}

func (g *gen) contentTypes() hostile {
	_, h := g.write()
	h.kind = "content types"
	h.hdr = h.hdr[:1]
	for range g.r.IntN(3) {
		h.hdr = append(h.hdr, [2]string{"Content-Type", g.pick("text/plain", "application/json; charset=latin1",
			"application/json;;", "application/x-www-form-urlencoded", "application/json; charset=utf-8", "", "*/*",
			"application/json; boundary=\"", "multipart/form-data; boundary=x")})
	}
	return h
}

// raw makes a request net/http's client would refuse to send.
func (g *gen) raw() string {
	path := g.pick("/v1/nodes/", "/v1/compartments?metadata.a=", "/v1/nodes?after=", "/v1/history/node/") + string(g.bytes(1+g.r.IntN(6)))
	path = strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f || r == '#' || r == '?' && g.r.IntN(2) == 0 {
			return 'x'
		}
		return r
	}, path)
	body := string(g.bytes(g.r.IntN(64)))
	switch g.r.IntN(6) {
	case 0:
		return "GET " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: " + asAdmin + "\r\nConnection: close\r\n\r\n"
	case 1:
		return "PATCH /v1/nodes/n1 HTTP/1.1\r\nHost: x\r\nAuthorization: " + asAdmin + "\r\nIf-Match: \"\xff\"\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
	case 2:
		return "GET /v1/nodes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe" + body + "\r\nConnection: close\r\n\r\n"
	case 3:
		return "POST /v1/tiers HTTP/1.1\r\nHost: x\r\nAuthorization: " + asAdmin + "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
			g.pick("zz\r\n", "5\r\n{}", "ffffffffffffffffff\r\n", "1\r\n{\r\n0\r\n\r\n") + "\r\n"
	case 4:
		return "POST /v1/compartments HTTP/1.1\r\nHost: x\r\nAuthorization: " + asAdmin + "\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n{\"ring\":1"
	default:
		return string(g.bytes(g.r.IntN(200))) + "\r\n\r\n"
	}
}
