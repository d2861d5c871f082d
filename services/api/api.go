// Package api is ring 0's meta HTTP API: JSON over HTTP, versioned under /v1, in front of the
// inventory store and ring 0's credential issuance. It lists and edits nodes, compartments and
// tiers, serves signed observations so anyone can verify them offline, issues one-time join
// tokens and exchanges them for bus credentials, decommissions ring 1 nodes, forwards a
// tenant's app operations to the ring 1 node hosting it (telling it who calls, in
// Enjin-Caller), takes VM image uploads into ring 0's image store (streamed, and refused
// with the reason when the store finds them hostile), and describes itself at /openapi.json.
//
// Every route is declared once, in a table from which both the request multiplexer and the
// OpenAPI document are built, so the two cannot drift. Every answer is JSON, errors included
// ({"error": "...", "code": "..."}). A caller's mistake is always a 4xx: bodies are size-capped,
// checked for UTF-8, decoded strictly and validated before the store sees them; writes to
// versioned objects require If-Match. A panic is recovered and logged as a 500.
//
// The Authorization header is handed to pluggable Checkers (a static admin token, an htpasswd
// file); identities that are not admins may only read, except tenant tokens, which manage
// their own tenant's apps and images. The web view (package webui) is mounted at /ui; its
// session cookie stands in for the header on GET routes, as a reader. Only ring 0 imports api.
package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"enjin"
	"enjin/services/images"
	"enjin/services/inventory"
	"enjin/services/webui"
)

// Ring0 is what the API needs from ring 0 beyond the store; ring 0 implements it.
type Ring0 interface {
	// Join redeems a one-time join token (external strategy) and returns the node id, the
	// NATS URL and a user JWT for userKey. Errors wrapping inventory.ErrNotFound mean the
	// token is unknown, used or expired.
	// Join redeems a join token; appsKey, if set, is the public key (PEM) of the node's app
	// API to certify (ErrBadAppsKey if it is none).
	Join(ctx context.Context, token, userKey, attestKey, appsKey string) (JoinResult, error)
	// OpsCreds returns a .creds file for an OPS user (subscribe ops.>, publish nothing).
	OpsCreds(ctx context.Context, name string) ([]byte, error)
	// CreateTenant creates a tenant: its record, its NATS account and a scoped signing key
	// on the ring 1 node(s) chosen to host it.
	CreateTenant(ctx context.Context, t enjin.TenantID, metadata map[string]any) (inventory.Tenant, error)
	// DeleteTenant revokes and stops everything tenant t has, if its version is still version.
	DeleteTenant(ctx context.Context, t enjin.TenantID, version int64) error
	// AppsBackend is the app API of the ring 1 node running tenant t's app. With place, an
	// app not yet placed is placed: on node if given, else where ring 0 chooses. Errors
	// wrapping inventory.ErrNotFound mean no such tenant.
	AppsBackend(ctx context.Context, t enjin.TenantID, app string, place bool, node enjin.NodeID) (AppsBackend, error)
	// AppsBackends are the app APIs of every node hosting tenant t's apps.
	AppsBackends(ctx context.Context, t enjin.TenantID) ([]AppsBackend, error)
	// ForgetApp forgets where tenant t's destroyed app ran.
	ForgetApp(ctx context.Context, t enjin.TenantID, app string) error
	// Decommission takes ring 1 node id out of service for good, if its version is still
	// version: every bus credential ring 0 issued for it is revoked (its connections close
	// at once), its attestation key is forgotten (its observations are refused) and it is
	// marked decommissioned. Errors wrap inventory.ErrNotFound, ErrConflict (a stale
	// version), ErrInvalid (not a ring 1 node) or ErrInUse (this ring 0 runs it as a child
	// process, or it hosts tenants).
	Decommission(ctx context.Context, id enjin.NodeID, version int64) (inventory.Node, error)
	// Leadership names this ring 0 member and the fencing epoch it leads with (0: another
	// member leads, or none yet).
	Leadership() (member string, epoch int64)
}

// AppsBackend is a ring 1 node's app API: where it is and the bearer it takes.
type AppsBackend struct {
	Node  enjin.NodeID
	Base  string // http://host:port, or https://host:port
	Token string
	TLS   *tls.Config // with https: how to check the node's certificate
}

// JoinResult is what a joining node receives: who it is, where the bus is, and its user JWT.
type JoinResult struct {
	Node enjin.NodeID `json:"node"`
	NATS string       `json:"nats"`
	JWT  string       `json:"jwt"`
	// Servers are the brokers of every ring 0 member (NATS first), for the node to fail
	// over between; absent with a single ring 0.
	Servers []string `json:"servers,omitempty"`
	// AppsToken is the bearer ring 0 will present to the node's app API, if it hosts apps.
	AppsToken string `json:"apps_token,omitempty"`
	// CA is the certificate (PEM) of the CA ring 0 serves TLS from: the node trusts ring 0's
	// API and brokers by it alone.
	CA string `json:"ca"`
	// AppsCert is the certificate (PEM, with the CA's) of the apps_key the node sent, naming
	// it as keys.NodeName does.
	AppsCert string `json:"apps_cert,omitempty"`
}

// ErrBadAppsKey is a join's apps_key that is no ECDSA P-256 public key.
var ErrBadAppsKey = errors.New("not an ECDSA P-256 public key (PEM)")

// Config configures the API. Store, Ring0 and at least one Checker are required.
type Config struct {
	Store       *inventory.Store
	Ring0       Ring0
	Checkers    []Checker     // tried in order on every authenticated request
	Logger      *slog.Logger  // nil discards; the access log is at Debug
	MaxBody     int64         // largest JSON request body accepted; 0 means 1 MiB
	Images      *images.Store // the VM image store; nil: the image routes answer 503
	ImageLimits images.Limits // bounds on each image upload; zero fields take their defaults
	VMs         VMs           // VMs and volumes; nil: their routes answer 503
	// Metrics, if set, is served at /metrics (Prometheus' text format), with the API's own
	// counters registered on it; MetricsOpen serves it without a token (a loopback listener).
	Metrics     *prometheus.Registry
	MetricsOpen bool
	// CAFingerprint is the trust chain's CA's (keys.Fingerprint), which join tokens carry.
	CAFingerprint string
	// Custom domains: Sealer seals their private keys (nil: the routes that add them answer
	// 503); a domain under AppsDomain, whose names are tenants' apps, is refused;
	// DomainsChanged, if set, is called once one is added or removed.
	Sealer         Sealer
	AppsDomain     string
	DomainsChanged func()
	// Backup makes the backups GET /v1/backup streams; nil: it answers 503.
	Backup Backup
	// ACME says ring 0 gets custom domains' certificates from an ACME server when asked
	// (false: PUT …/domains/{domain} with acme answers 422 acme_unconfigured).
	ACME bool
}

// DefaultMaxBody is the request body limit when Config.MaxBody is zero.
const DefaultMaxBody = 1 << 20

// API serves the meta HTTP API. It is safe for concurrent use.
type API struct {
	store       *inventory.Store
	ring0       Ring0
	checkers    []Checker
	log         *slog.Logger
	maxBody     int64
	images      *images.Store
	imageLimits images.Limits
	vms         VMs
	rulesets    Rulesets // VMs, if it carries rule set changes to NICs
	caPrint     string   // Config.CAFingerprint
	ui          *webui.UI

	mux      *http.ServeMux
	patterns []string // every pattern registered on mux, in table order
	openapi  []byte   // the OpenAPI document, encoded once
	onPanic  func(any)

	metrics     *prometheus.Registry
	metricsOpen bool
	counts      *apiMetrics

	sealer         Sealer
	appsDomain     string
	domainsChanged func()
	backup         Backup
	acme           bool
}

// New checks cfg and builds the API's routes and OpenAPI document.
func New(cfg Config) (*API, error) {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("api: no store"))
	}
	if cfg.Ring0 == nil {
		errs = append(errs, errors.New("api: no ring 0"))
	}
	if len(cfg.Checkers) == 0 {
		errs = append(errs, errors.New("api: no credential checkers: nobody could sign in"))
	}
	if cfg.MaxBody < 0 {
		errs = append(errs, errors.New("api: negative body limit"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Tenant tokens (et_…), the backup credential (eb_…) and every ring 0 member's admin token are always accepted; they are
	// tried first, and a token they do not know goes on to the configured checkers.
	checkers := append([]Checker{tenantTokens{cfg.Store}, backupTokens{cfg.Store}, &memberAdmins{store: cfg.Store}}, cfg.Checkers...)
	a := &API{store: cfg.Store, ring0: cfg.Ring0, checkers: checkers, log: cfg.Logger,
		maxBody: cfg.MaxBody, images: cfg.Images, imageLimits: cfg.ImageLimits.WithDefaults(), vms: cfg.VMs, mux: http.NewServeMux()}
	a.rulesets, _ = cfg.VMs.(Rulesets)
	a.metrics, a.metricsOpen, a.caPrint = cfg.Metrics, cfg.MetricsOpen, cfg.CAFingerprint
	a.sealer, a.domainsChanged, a.backup, a.acme = cfg.Sealer, cfg.DomainsChanged, cfg.Backup, cfg.ACME
	a.appsDomain = strings.ToLower(strings.Trim(cfg.AppsDomain, "."))
	var err error
	if a.counts, err = newAPIMetrics(cfg.Metrics); err != nil {
		return nil, fmt.Errorf("api: metrics: %w", err)
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.maxBody == 0 {
		a.maxBody = DefaultMaxBody
	}
	if a.ui, err = webui.New(webui.Config{Authenticate: a.uiLogin, Digests: a.uiDigests, Logger: a.log}); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	routes := a.routes()
	for _, rt := range routes {
		p := rt.method + " " + rt.path
		a.mux.Handle(p, a.wrap(rt))
		a.patterns = append(a.patterns, p)
	}
	doc, err := json.Marshal(openAPI(routes))
	if err != nil {
		return nil, err
	}
	a.openapi = doc
	return a, nil
}

// Handler returns the API's HTTP handler: access log, panic recovery and the routes.
func (a *API) Handler() http.Handler {
	return a.accessLog(a.recoverPanics(a.jsonMux()))
}

// Timeouts bound how long the meta API's server waits on a client. A zero field takes its
// default. Read and Write cover a whole request and its answer on every route but the
// forwarded app routes and the image uploads and downloads, where instead each read of the
// body and each write of the answer must make progress within them (see streaming).
type Timeouts struct {
	ReadHeader time.Duration // reading the request head; 0 is 5s
	Read       time.Duration // reading the whole request; 0 is 30s
	Write      time.Duration // from the end of the head to the end of the answer; 0 is 60s
	Idle       time.Duration // a kept-alive connection waiting for its next request; 0 is 120s
}

// NewServer returns an http.Server for h on addr with timeouts suited to a public listener.
func NewServer(addr string, h http.Handler, t Timeouts) *http.Server {
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: or(t.ReadHeader, 5*time.Second),
		ReadTimeout:       or(t.Read, 30*time.Second),
		WriteTimeout:      or(t.Write, 60*time.Second),
		IdleTimeout:       or(t.Idle, 120*time.Second),
		MaxHeaderBytes:    64 << 10,
	}
}

// health answers ok when the database does.
func (a *API) health(c *call) error {
	ctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
	defer cancel()
	if err := a.store.Ping(ctx); err != nil {
		a.log.Warn("health check: database unavailable", "err", err)
		return &apiError{http.StatusServiceUnavailable, "unavailable", "the database is unavailable"}
	}
	a.reply(c.w, http.StatusOK, health{Status: "ok"})
	return nil
}

type health struct {
	Status string `json:"status"`
}

// leaderView is who leads ring 0 as recorded, and whether the member answering does.
type leaderView struct {
	inventory.Leader
	ThisMember string `json:"this_member"`
	Leading    bool   `json:"leading"` // the member answering holds the lease now
}

func (a *API) leader(c *call) error {
	l, err := a.store.Leader(c.ctx)
	if err != nil {
		return err
	}
	member, epoch := a.ring0.Leadership()
	a.reply(c.w, http.StatusOK, leaderView{Leader: l, ThisMember: member, Leading: epoch != 0 && epoch == l.Epoch})
	return nil
}

// placementList is every app's placement with its winning bid.
type placementList struct {
	Placements []inventory.Placement `json:"placements"`
}

func (a *API) placements(c *call) error {
	ps, err := a.store.Placements(c.ctx)
	if err != nil {
		return err
	}
	a.reply(c.w, http.StatusOK, placementList{Placements: nonNil(ps)})
	return nil
}

func (a *API) document(c *call) error {
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = c.w.Write(a.openapi) // a failed write means the client went away
	return nil
}
