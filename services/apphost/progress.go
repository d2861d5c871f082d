package apphost

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// Progress receives a deploy's events as they happen; nil ignores them.
type Progress func(Event)

func (p Progress) send(e Event) {
	if p != nil {
		p(e)
	}
}

// DeployError is a release that did not go live: ErrUnhealthy (with the failing instance's
// reason when one failed) or a failure to start it; the previous release keeps serving.
type DeployError struct {
	Release int
	Reason  *Reason
	Err     error
}

func (e *DeployError) Error() string {
	msg := fmt.Sprintf("release %d: %v", e.Release, e.Err)
	if e.Reason != nil && e.Reason.Exit != "" {
		msg += fmt.Sprintf(" (%s: %s)", e.Reason.Instance, e.Reason.Exit)
	}
	return msg
}

func (e *DeployError) Unwrap() error { return e.Err }

// ErrUnhealthy is a release whose instances were not all healthy in time, or kept crashing;
// they were stopped and the previous release kept serving.
var ErrUnhealthy = errors.New("not healthy in time; rolled back")

// ErrNotFound is returned for an app or release that does not exist.
var ErrNotFound = errors.New("not found")

// ErrQuota is a deploy or scale that would run more instances than the tenant may.
var ErrQuota = errors.New("quota exceeded")

// recovered, deferred at the top of a goroutine doing work a tenant influences, turns a
// panic into a log line and onPanic (marking that one instance unhealthy, say), so it never
// takes the node down with every other tenant's apps.
func (h *Host) recovered(what string, in *instance, onPanic func()) {
	v := recover()
	if v == nil {
		return
	}
	attrs := []any{"what", what, "panic", v, "stack", string(debug.Stack())}
	if in != nil {
		attrs = append(attrs, "tenant", in.app.tenant, "app", in.app.name, "instance", in.name)
	}
	h.log.Error("recovered from a panic", attrs...)
	if onPanic != nil {
		onPanic()
	}
}
