package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"

	"enjin/bench"
)

// `enjin bench net` measures both paths, prints its ratios, and leaves no namespace behind.
func TestBenchNet(t *testing.T) {
	var out bytes.Buffer
	cmd := newRoot(&globals{}, nil, &out, io.Discard)
	cmd.SetArgs([]string{"bench", "net", "--seconds", "0.3", "--requests", "200", "-o", "json"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	var f bench.NetFigures
	if err := json.Unmarshal(out.Bytes(), &f); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if f.Underlay.Gbps <= 0 || f.VXLAN.Gbps <= 0 || f.VXLAN.P50Us <= 0 || f.Throughput <= 0 || f.LatencyP99 <= 0 {
		t.Fatalf("figures: %+v", f)
	}
	t.Logf("bench net: %s", strings.TrimSpace(out.String()))
	if ns, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(ns), "enjbn-") {
		t.Fatalf("namespaces left:\n%s", ns)
	}
}
