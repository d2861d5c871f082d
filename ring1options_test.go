package enjin_test

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"enjin"
)

func TestRing1OptionsArgs(t *testing.T) {
	node := enjin.DefaultRing1Options()
	node.Node, node.NATS, node.Heartbeat, node.NoVMs = "n1", "nats://127.0.0.1:4222", 300*time.Millisecond, true
	node.AppsAPI, node.Router = "127.0.0.1:7071", "198.18.0.2:7080" // the default, and another
	lists := enjin.DefaultRing1Options()
	lists.Leaf, lists.NATUplinks = []string{"nats://a:7422", "nats://b:7422"}, []string{"eth,0", `say "hi"`}
	for _, tc := range []struct {
		name string
		o    enjin.Ring1Options
		want []string
	}{
		{"defaults", enjin.DefaultRing1Options(), []string{"ring1"}},
		{"zero", enjin.Ring1Options{}, []string{"ring1", "--heartbeat", "0s", "--log-level", "", "--apps-api", "",
			"--router", "", "--router-hold", "0s", "--apps-domain", "", "--dns", "", "--bridge", "", "--prefix", ""}},
		{"a node ring 0 runs", node, []string{"ring1", "--node", "n1", "--nats", "nats://127.0.0.1:4222",
			"--heartbeat", "300ms", "--no-vms", "--router", "198.18.0.2:7080"}},
		{"lists", lists, []string{"ring1", "--leaf", "nats://a:7422,nats://b:7422", "--nat-uplink", `"eth,0","say ""hi"""`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.o.Args(); !slices.Equal(got, tc.want) {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// Every field of Ring1Options is one flag, under a name no other flag has.
func TestRing1OptionsFlagsCoverEveryField(t *testing.T) {
	var o enjin.Ring1Options
	bound, names := map[any]string{}, map[string]bool{}
	for _, f := range o.Flags() {
		if names[f.Name] {
			t.Errorf("--%s: two flags of this name", f.Name)
		}
		names[f.Name] = true
		if f.Usage == "" && !f.Root {
			t.Errorf("--%s: no usage", f.Name)
		}
		bound[f.Value] = f.Name
	}
	v := reflect.ValueOf(&o).Elem()
	for i := range v.NumField() {
		if _, ok := bound[v.Field(i).Addr().Interface()]; !ok {
			t.Errorf("field %s: got no flag, want one", v.Type().Field(i).Name)
		}
	}
	if len(bound) != v.NumField() {
		t.Errorf("got %d flags want %d, one per field", len(bound), v.NumField())
	}
}
