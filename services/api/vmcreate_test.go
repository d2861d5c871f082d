package api

import "testing"

// A VM routes only for one of the tenant networks it joins, and only with another to route to.
func TestVMCreateRouter(t *testing.T) {
	for _, c := range []struct {
		networks []string
		router   string
		ok       bool
	}{
		{[]string{"outer", "inner"}, "inner", true},
		{[]string{"outer", "inner"}, "", true},
		{[]string{"outer", "inner"}, "other", false},
		{[]string{"inner"}, "inner", false},
		{[]string{"default", "inner"}, "default", false},
		{nil, "inner", false},
	} {
		b := VMCreate{Name: "gw", Image: "guest", MachineType: "small", Networks: c.networks, Router: c.router}
		if err := b.validate(); (err == nil) != c.ok {
			t.Errorf("networks %v, router %q: %v, want ok %t", c.networks, c.router, err, c.ok)
		}
	}
}
