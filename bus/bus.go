// Package bus owns enjin's wire: the subject names of every flow (all built in subjects.go),
// the permissions each kind of identity gets (policy.go), typed publish/request/subscribe
// helpers over nats.go, and the signed-observation envelope with its verifier.
//
// Delivery on the bus is core NATS: at most once. Nothing here acknowledges an observation;
// ring 0 acknowledges only after the store commits it. Commands are request/reply with a
// deadline and must be idempotent.
//
// A signed observation is a JSON payload (enjin.Observation) with four headers: Obs-Signer,
// Obs-Ts, Obs-Seq and Obs-Sig, an ed25519 signature by the node's attestation key over a
// domain-separated canonical form of node id, timestamp, sequence and payload. The Verifier
// accepts it only if the signer is registered for the node named by the server-enforced
// subject token, the timestamp is within the window, the sequence is above the node's
// high-water mark and the signature holds; it reports the reason for every rejection.
//
// bus imports keys and rings; the layers above it (guest, supervisors, services, the rings,
// cmd) may import bus.
package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"enjin"
	"enjin/keys"
)

// Connect dials url as the user in creds. Replies come to the user's own inbox prefix (the
// only one its permissions let it read). Revocation and expiry are terminal: the connection
// closes instead of retrying with a credential that can no longer work.
func Connect(url string, creds *keys.Creds, opts ...nats.Option) (*nats.Conn, error) {
	kp, err := creds.KeyPair()
	if err != nil {
		return nil, err
	}
	base := []nats.Option{
		nats.Name(creds.Name),
		nats.UserJWT(
			func() (string, error) { return creds.JWT, nil },
			func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) },
		),
		nats.CustomInboxPrefix(Inbox(creds.Name)),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
	}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("bus: connect %s as %s: %w", url, creds.Name, err)
	}
	prev := nc.Opts.AsyncErrorCB
	nc.SetErrorHandler(func(c *nats.Conn, s *nats.Subscription, err error) {
		if Terminal(err) {
			go c.Close() // Close waits for this callback's goroutine; never call it inline
		}
		if prev != nil {
			prev(c, s, err)
		}
	})
	return nc, nil
}

// Terminal reports whether err means the credential itself is no longer accepted.
func Terminal(err error) bool {
	return errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAuthExpired)
}

// Publish sends v as JSON on subj.
func Publish[T any](nc *nats.Conn, subj string, v T) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("bus: publish %s: %w", subj, err)
	}
	if err := nc.Publish(subj, b); err != nil {
		return fmt.Errorf("bus: publish %s: %w", subj, err)
	}
	return nil
}

// Request sends req as JSON on subj and decodes the JSON reply, within ctx's deadline.
// A reply carrying an error (see Reply) comes back as an error.
func Request[Req, Resp any](ctx context.Context, nc *nats.Conn, subj string, req Req) (Resp, error) {
	var zero Resp
	b, err := json.Marshal(req)
	if err != nil {
		return zero, fmt.Errorf("bus: request %s: %w", subj, err)
	}
	m, err := nc.RequestWithContext(ctx, subj, b)
	if err != nil {
		return zero, fmt.Errorf("bus: request %s: %w", subj, err)
	}
	if e := m.Header.Get(HdrError); e != "" {
		return zero, fmt.Errorf("bus: request %s: %w", subj, &RemoteError{Msg: e})
	}
	var out Resp
	if err := json.Unmarshal(m.Data, &out); err != nil {
		return zero, fmt.Errorf("bus: request %s: reply: %w", subj, err)
	}
	return out, nil
}

// HdrError carries a responder's error message instead of a JSON reply.
const HdrError = "Enjin-Error"

// HdrRetryAfter, with an error, says the refusal is for now only: the sender should send the
// same again after this many milliseconds (with jitter of its own), not give it up.
const HdrRetryAfter = "Enjin-Retry-After"

// RemoteError is an error a responder sent back. RetryAfter, if not zero, says it refused for
// now only (ring 0 overloaded): send again after it.
type RemoteError struct {
	Msg        string
	RetryAfter time.Duration
}

func (e *RemoteError) Error() string { return "remote: " + e.Msg }

// Handle subscribes to subj (in queue group queue, if not empty) and answers each request
// with fn's result: JSON on success, an Enjin-Error header otherwise. Requests that do not
// decode are answered with an error, never dropped silently.
func Handle[Req, Resp any](nc *nats.Conn, subj, queue string, fn func(m *nats.Msg, req Req) (Resp, error)) (*nats.Subscription, error) {
	h := func(m *nats.Msg) {
		var req Req
		if err := json.Unmarshal(m.Data, &req); err != nil {
			replyErr(m, fmt.Errorf("decode request: %w", err))
			return
		}
		resp, err := fn(m, req)
		if errors.Is(err, ErrReplyLater) {
			return
		}
		Reply(m, resp, err)
	}
	sub, err := nc.QueueSubscribe(subj, queue, h)
	if err != nil {
		return nil, fmt.Errorf("bus: handle %s: %w", subj, err)
	}
	return sub, nil
}

// ErrReplyLater, returned by a Handle function, says it took the request on and will answer
// it with Reply itself — from a goroutine of its own, so that a long command (a VM's image
// fetched, say) does not hold up the requests behind it.
var ErrReplyLater = errors.New("bus: the handler replies later")

// Reply answers request m with resp, or, if err is not nil, refuses it with err.
func Reply(m *nats.Msg, resp any, err error) {
	if err != nil {
		replyErr(m, err)
		return
	}
	b, err := json.Marshal(resp)
	if err != nil {
		replyErr(m, err)
		return
	}
	_ = m.Respond(b) // the requester times out if this is lost; commands are idempotent
}

func replyErr(m *nats.Msg, err error) {
	r := nats.NewMsg(m.Reply)
	r.Header.Set(HdrError, err.Error())
	_ = m.RespondMsg(r)
}

// SendObservation signs obs with s, sends it on subj as a request and waits, within ctx, for
// the acknowledgement ring 0 gives only after its store has committed the observation. An
// error means the observation may or may not be stored; a *RemoteError means it was refused.
func SendObservation(ctx context.Context, nc *nats.Conn, s *Signer, subj string, obs enjin.Observation) (Seal, error) {
	b, err := json.Marshal(obs)
	if err != nil {
		return Seal{}, fmt.Errorf("bus: observation: %w", err)
	}
	sl := s.Sign(b, time.Now())
	m, err := nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subj, Header: sl.Header(), Data: b})
	if err != nil {
		return sl, fmt.Errorf("bus: observation %d on %s: %w", sl.Seq, subj, err)
	}
	if e := m.Header.Get(HdrError); e != "" {
		re := &RemoteError{Msg: e}
		if ms, err := strconv.Atoi(m.Header.Get(HdrRetryAfter)); err == nil && ms > 0 {
			re.RetryAfter = time.Duration(min(ms, 60_000)) * time.Millisecond
		}
		return sl, fmt.Errorf("bus: observation %d on %s: %w", sl.Seq, subj, re)
	}
	return sl, nil
}

// Ack acknowledges a stored observation to its sender (no-op if it asked for no reply). A
// lost ack is no ack to the sender: a ring 1 node sends the observation again, signed afresh
// under a new sequence, so the store, keyed by node and sequence, keeps it twice; a sender
// that sends the same bytes again is acknowledged again (see Verifier) and stored once.
func Ack(m *nats.Msg) {
	if m.Reply != "" {
		_ = m.Respond(nil)
	}
}

// Refuse answers a rejected observation with the reason.
func Refuse(m *nats.Msg, err error) {
	if m.Reply != "" {
		replyErr(m, err)
	}
}

// Defer answers an observation refused for now only — ring 0 has more than it can take —
// with the reason and when to send it again.
func Defer(m *nats.Msg, err error, after time.Duration) {
	if m.Reply == "" {
		return
	}
	r := nats.NewMsg(m.Reply)
	r.Header.Set(HdrError, err.Error())
	r.Header.Set(HdrRetryAfter, strconv.FormatInt(max(after.Milliseconds(), 1), 10))
	_ = m.RespondMsg(r)
}

// PublishObservation signs obs with s and publishes it on subj without waiting for an
// acknowledgement.
func PublishObservation(nc *nats.Conn, s *Signer, subj string, obs enjin.Observation) (Seal, error) {
	b, err := json.Marshal(obs)
	if err != nil {
		return Seal{}, fmt.Errorf("bus: observation: %w", err)
	}
	sl := s.Sign(b, time.Now())
	m := &nats.Msg{Subject: subj, Header: sl.Header(), Data: b}
	if err := nc.PublishMsg(m); err != nil {
		return sl, fmt.Errorf("bus: publish observation on %s: %w", subj, err)
	}
	return sl, nil
}
