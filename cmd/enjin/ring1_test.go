package main

import (
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"enjin"
)

// What ring 0 passes a ring 1 node, `enjin ring1` reads back: options rendered as Args and
// parsed by the command's own flags (the root's among them) are the options again.
func TestRing1OptionsRoundTrip(t *testing.T) {
	node := enjin.DefaultRing1Options() // as ring 0 launches a simulated host
	node.Node, node.NATS, node.Creds, node.Attest = "ring1-h2", "nats://198.18.0.1:4222", "/s/node.creds", "/s/attest.seed"
	node.Heartbeat, node.Dir, node.Ring0, node.Netns, node.CA = 300*time.Millisecond, "/s", "https://127.0.0.1:7070", "enjin-h2", "/s/ca.crt"
	node.AppsDir, node.AppsAPI, node.AppsTokenFile, node.Router = "/s/apps", "198.18.0.2:7071", "/s/apps.token", "198.18.0.2:7080"
	node.NoVMs, node.Bridge, node.UIDRange = true, "enjin0h2", "700000000:1000"
	joined := enjin.DefaultRing1Options()
	joined.Join, joined.Ring0, joined.Leaf = "-", "https://r0:7070", []string{"nats://a:7422", "nats://b,c:7422"}
	cases := map[string]enjin.Ring1Options{"defaults": enjin.DefaultRing1Options(), "a node ring 0 runs": node, "joining": joined}
	// And every field set alone, to a value other than its default.
	def := enjin.DefaultRing1Options()
	for i, f := range def.Flags() {
		o := enjin.DefaultRing1Options()
		switch p := o.Flags()[i].Value.(type) {
		case *string:
			*p = "-" + f.Name + " x" // a leading dash and a space
		case *bool:
			*p = !*p
		case *time.Duration:
			*p = *p + 1500*time.Millisecond
		case *[]string:
			*p = []string{f.Name, "a,b", ""}
		default:
			t.Fatalf("--%s: a flag of type %T", f.Name, p)
		}
		cases["--"+f.Name] = o
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := parseRing1(t, want.Args())
			if err != nil {
				t.Fatalf("parse %q: %v", want.Args(), err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("args %q\ngot  %+v\nwant %+v", want.Args(), got, want)
			}
		})
	}
}

// parseRing1 parses args (Args' command line) as the enjin command does, and returns the
// options its flags then hold.
func parseRing1(t *testing.T, args []string) (enjin.Ring1Options, error) {
	root := newRoot(&globals{}, strings.NewReader(""), io.Discard, io.Discard)
	c, rest, err := root.Find(args)
	if err != nil {
		return enjin.Ring1Options{}, err
	}
	if c.Name() != args[0] {
		t.Fatalf("args %q run %q, want %q", args, c.Name(), args[0])
	}
	if err := c.ParseFlags(rest); err != nil {
		return enjin.Ring1Options{}, err
	}
	if left := c.Flags().Args(); len(left) > 0 {
		t.Errorf("args %q leave %q unparsed", args, left)
	}
	var o enjin.Ring1Options
	for _, f := range o.Flags() {
		fl := c.Flags().Lookup(f.Name)
		if fl == nil {
			t.Fatalf("enjin ring1 has no --%s", f.Name)
		}
		if err := read(f.Value, fl.Value); err != nil {
			t.Fatalf("--%s: %v", f.Name, err)
		}
	}
	return o, nil
}

// read copies a parsed flag's value to field p.
func read(p any, v pflag.Value) error {
	var err error
	switch p := p.(type) {
	case *string:
		*p = v.String()
	case *bool:
		*p, err = strconv.ParseBool(v.String())
	case *time.Duration:
		*p, err = time.ParseDuration(v.String())
	case *[]string:
		if *p = v.(pflag.SliceValue).GetSlice(); len(*p) == 0 {
			*p = nil
		}
	default:
		err = fmt.Errorf("a field of type %T", p)
	}
	return err
}
