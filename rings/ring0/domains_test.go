package ring0

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"enjin/bus"
)

// TestSplitDomains: however many domains there are, each message stays well under the bus's
// payload limit, and the parts, in order, are the domains.
func TestSplitDomains(t *testing.T) {
	pem := strings.Repeat("A", 3000) // a certificate chain or key of some size
	for _, n := range []int{0, 1, 80, 1000} {
		var ds []bus.Domain
		for i := range n {
			ds = append(ds, bus.Domain{Domain: fmt.Sprintf("d%d.example.test", i), Tenant: "acme", App: "web", Cert: pem, Key: pem})
		}
		parts := splitDomains(ds, "set1")
		var back []bus.Domain
		for i, p := range parts {
			b, _ := json.Marshal(p)
			if len(b) > 512<<10 || p.Part != i || p.Parts != len(parts) || p.Set != "set1" {
				t.Fatalf("%d domains: part %d: %d bytes, part %d of %d, set %q", n, i, len(b), p.Part, p.Parts, p.Set)
			}
			back = append(back, p.Domains...)
		}
		if len(back) != n || n > 0 && back[n-1].Domain != ds[n-1].Domain {
			t.Fatalf("%d domains split into %d parts holding %d", n, len(parts), len(back))
		}
		t.Logf("%d domains: %d parts", n, len(parts))
	}
}
