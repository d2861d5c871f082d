package ring1

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"enjin"
	"enjin/keys"
)

// Files Join writes in its directory, both mode 0600.
const (
	AttestFile    = "attest.seed" // the attestation key's seed (keys.LoadAttestation reads it)
	CredsFile     = "node.creds"  // the node's NATS credential (keys.LoadCreds reads it)
	AppsTokenFile = "apps.token"  // the bearer ring 0 presents to the node's app API
	// CAFile is the CA the node trusts ring 0 by (mode 0644); AppsCertFile and AppsKeyFile
	// (0600) are its app API's certificate and key, for serving beyond loopback.
	CAFile       = "ca.crt"
	AppsCertFile = "apps-tls.crt"
	AppsKeyFile  = "apps-tls.key"
)

// ErrJoinRefused is ring 0 answering a join with an error (a used or unknown token, say):
// trying the same token again cannot help.
var ErrJoinRefused = errors.New("refused")

// maxJoinReply bounds what Join reads of ring 0's answer.
const maxJoinReply = 64 << 10

// JoinRequest is the body of POST /v1/join: a one-time token and the public halves of the
// keys the node made for itself. The private halves never leave the node.
type JoinRequest struct {
	Token     string `json:"token"`
	UserKey   string `json:"user_key"`   // NATS user public key, U…
	AttestKey string `json:"attest_key"` // attestation public key (keys.Attestation.Public)
	AppsKey   string `json:"apps_key"`   // the app API's public key (PEM), to certify
}

// JoinReply is ring 0's answer to a successful join.
type JoinReply struct {
	Node enjin.NodeID `json:"node"`
	NATS string       `json:"nats"` // broker URL
	JWT  string       `json:"jwt"`  // the node's RING1 user JWT, for UserKey
	// AppsToken is the bearer ring 0 will present to the node's app API, should it host apps.
	AppsToken string `json:"apps_token,omitempty"`
	// Servers are every ring 0 member's broker, when there are several.
	Servers []string `json:"servers,omitempty"`
	CA      string   `json:"ca"`        // the CA ring 0 serves TLS from (PEM)
	AppsTLS string   `json:"apps_cert"` // AppsKey's certificate (PEM, with the CA's)
}

// Join is the client half of the `external` supervision strategy. It makes a fresh NATS
// user key and attestation key, stores the attestation key in dir, presents the join token
// with both public keys to ring 0 at ring0API/v1/join, checks the credential it gets back
// is for the key it made, stores it in dir, and returns the node's Config (Heartbeat and
// Logger left zero). A join that fails leaves no key behind, so it can be retried with a
// new token; dir must not hold an earlier node's attestation key.
//
// The token ends with the fingerprint of ring 0's CA (keys.JoinToken): over https, ring 0
// must show a certificate from that CA before the token's secret is sent, and the CA ring 0
// answers with must be that one; the node keeps it (CAFile) and trusts ring 0 by it alone
// from then on. hc nil means a client that does so.
func Join(ctx context.Context, ring0API, token, dir string, hc *http.Client) (Config, error) {
	secret, fp := keys.SplitJoinToken(token)
	if fp != "" && !keys.ValidFingerprint(fp) {
		return Config{}, fmt.Errorf("ring1: join: the token's CA fingerprint %q is malformed", fp)
	}
	if hc == nil {
		var err error
		if hc, err = pinnedClient(ring0API, fp); err != nil {
			return Config{}, err
		}
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return Config{}, fmt.Errorf("ring1: join: user key: %w", err)
	}
	userPub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	att, err := keys.NewAttestation()
	if err != nil {
		return Config{}, fmt.Errorf("ring1: join: %w", err)
	}
	// Stored before ring 0 learns the public key, so ring 0 never registers a key the node
	// could lose.
	attPath := filepath.Join(dir, AttestFile)
	if err := att.WriteFile(attPath); err != nil {
		return Config{}, fmt.Errorf("ring1: join: %w", err)
	}
	appsKey, appsPub, err := keys.NewKeyPEM()
	if err != nil {
		return Config{}, fmt.Errorf("ring1: join: %w", err)
	}
	jr := JoinRequest{Token: secret, UserKey: userPub, AttestKey: att.Public(), AppsKey: string(appsPub)}
	cfg, err := join(ctx, hc, ring0API, jr, seed, dir, fp, appsKey)
	if err != nil {
		// Without a credential the key vouches for nothing; a retry makes a new one.
		os.Remove(attPath)
		return Config{}, err
	}
	cfg.Attestation = att
	return cfg, nil
}

func join(ctx context.Context, hc *http.Client, ring0API string, jr JoinRequest, seed []byte, dir, fp string, appsKey []byte) (Config, error) {
	url := strings.TrimSuffix(ring0API, "/") + "/v1/join"
	rep, err := postJoin(ctx, hc, url, jr)
	if err != nil {
		return Config{}, fmt.Errorf("ring1: join %s: %w", url, err)
	}
	cr, err := checkJoin(rep, jr.UserKey, seed)
	if err != nil {
		return Config{}, fmt.Errorf("ring1: join %s: %w", url, err)
	}
	ca, err := keepTLS(rep, dir, fp, appsKey)
	if err != nil {
		return Config{}, fmt.Errorf("ring1: join %s: %w", url, err)
	}
	b, err := cr.File()
	if err != nil {
		return Config{}, fmt.Errorf("ring1: join: %w", err)
	}
	if err := keys.WriteCreds(filepath.Join(dir, CredsFile), b); err != nil {
		return Config{}, fmt.Errorf("ring1: join: %w", err)
	}
	if rep.AppsToken != "" {
		if err := keys.WriteCreds(filepath.Join(dir, AppsTokenFile), []byte(rep.AppsToken+"\n")); err != nil {
			return Config{}, fmt.Errorf("ring1: join: %w", err)
		}
	}
	return Config{Node: rep.Node, NATSURL: rep.NATS, NATSServers: rep.Servers, Creds: cr, CA: ca}, nil
}

// postJoin sends the request and decodes a 200 answer; any other status is an error
// carrying ring 0's message.
func postJoin(ctx context.Context, hc *http.Client, url string, jr JoinRequest) (JoinReply, error) {
	body, err := json.Marshal(jr)
	if err != nil {
		return JoinReply{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return JoinReply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return JoinReply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJoinReply))
	if err != nil {
		return JoinReply{}, fmt.Errorf("%s: read reply: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = "no error message"
		}
		return JoinReply{}, fmt.Errorf("%w: %s: %s", ErrJoinRefused, resp.Status, e.Error)
	}
	var rep JoinReply
	if err := json.Unmarshal(b, &rep); err != nil {
		return JoinReply{}, fmt.Errorf("decode reply: %w", err)
	}
	return rep, nil
}

// checkJoin checks ring 0's answer names a valid node and broker and a credential for the
// key the node made, and returns that credential.
func checkJoin(rep JoinReply, userPub string, seed []byte) (*keys.Creds, error) {
	if err := rep.Node.Validate(); err != nil {
		return nil, err
	}
	if rep.NATS == "" {
		return nil, errors.New("reply names no broker")
	}
	uc, err := jwt.DecodeUserClaims(rep.JWT)
	if err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	if uc.Subject != userPub {
		return nil, fmt.Errorf("credential is for %s, not the key %s this node made", uc.Subject, userPub)
	}
	if uc.Name != string(rep.Node) {
		return nil, fmt.Errorf("credential is named %q, not node %q", uc.Name, rep.Node)
	}
	var exp time.Time
	if uc.Expires != 0 {
		exp = time.Unix(uc.Expires, 0)
	}
	return &keys.Creds{Name: uc.Name, PublicKey: userPub, JWT: rep.JWT, Seed: seed, Expires: exp}, nil
}
