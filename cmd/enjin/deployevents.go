package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"enjin/services/appapi"
	"errors"
	"fmt"
	"io"
)

// The deploy stream: POST …/apps/{app}/releases with Accept: application/x-ndjson is answered,
// once the bundle is accepted, with 200 and one JSON event a line as the release progresses —
// unpacked, starting, healthy — and then exactly one final event, live or failed. Blank lines
// keep the connection alive; events of other names are ignored, so the server may add some.
type deployEvent struct {
	Event     string          `json:"event"`
	Release   json.RawMessage `json:"release"` // the release number; in "live", the Release
	Instances int             `json:"instances"`
	Files     int             `json:"files"`
	Bytes     int64           `json:"bytes"`
	Error     string          `json:"error"`
	Reason    *appapi.Reason  `json:"reason"`
}

var errStreamCut = errors.New("the connection closed before the release was live or failed")

// deployWatch follows one deploy stream.
type deployWatch struct {
	progress    io.Writer
	detail      io.Writer
	bundleBytes int
	uploaded    bool
}

// read follows the stream to its final event and returns the live release, or why not.
func (w *deployWatch) read(r io.Reader) (appapi.Release, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20) // a failure's reason carries log lines
	var bad error                             // an unreadable line: a protocol error unless the stream was cut in it
	for sc.Scan() {
		if bad != nil {
			return appapi.Release{}, bad
		}
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue // keep-alive
		}
		var ev deployEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			bad = fmt.Errorf("unreadable event %.80q: %v", line, err)
			continue
		}
		if rel, done, err := w.event(ev); done {
			return rel, err
		}
	}
	return appapi.Release{}, errStreamCut // at EOF or a broken read, never a bare EOF
}

// event reports one event; done says it was the final one.
func (w *deployWatch) event(ev deployEvent) (rel appapi.Release, done bool, err error) {
	if !w.uploaded {
		w.uploaded = true
		fmt.Fprintf(w.progress, "uploaded %s\n", megabytes(w.bundleBytes))
	}
	switch ev.Event {
	case "starting":
		fmt.Fprintf(w.progress, "release %s starting (%s)\n", ev.Release, plural(ev.Instances, "instance"))
	case "healthy":
		fmt.Fprintf(w.progress, "release %s healthy\n", ev.Release)
	case "live":
		if err := json.Unmarshal(ev.Release, &rel); err != nil || rel.Number == 0 {
			return rel, true, fmt.Errorf("unreadable live release %.80q", ev.Release)
		}
		fmt.Fprintf(w.progress, "traffic moved to release %d\n", rel.Number)
		return rel, true, nil
	case "failed":
		w.failed(ev)
		if ev.Error == "" {
			ev.Error = "release " + string(ev.Release) + " failed"
		}
		return rel, true, errors.New(ev.Error)
	}
	return rel, false, nil
}

// failed prints why the release failed: the instance's exit and its last log lines.
func (w *deployWatch) failed(ev deployEvent) {
	r := ev.Reason
	if r == nil {
		return
	}
	msg := "release " + string(ev.Release) + " failed"
	if r.Instance != "" {
		msg += ": instance " + r.Instance
	}
	if r.Exit != "" {
		msg += ": " + r.Exit
	}
	fmt.Fprintln(w.detail, msg)
	for _, l := range r.Logs {
		fmt.Fprintf(w.detail, "    %s\n", l)
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
