package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"enjin"
	"enjin/services/api"
	"enjin/services/appapi"
	"enjin/services/inventory"
)

// storeVMs is the VM service over the real store, as ring 0's is, without placing anything
// on a ring 1 node: every VM and volume lives on node vmNode, and host VMs are nodes only.
type storeVMs struct{ store *inventory.Store }

const vmNode = "vmhost"

func (s storeVMs) CreateVM(ctx context.Context, t enjin.TenantID, in api.VMCreate) (inventory.VM, error) {
	nics := []inventory.NIC{{MAC: "52:54:00:00:00:01", Network: "default"}}
	for i, n := range in.Networks {
		nics = append(nics, inventory.NIC{MAC: fmt.Sprintf("52:54:00:00:00:%02x", i+2), Network: n, Rulesets: in.Rulesets, Router: n == in.Router})
	}
	return s.store.CreateVM(ctx, inventory.VM{ID: inventory.NewID(), Tenant: t, Name: in.Name, Image: in.Image,
		MachineType: in.MachineType, Node: vmNode, Spec: inventory.VMSpec{Networks: in.Networks, NICs: nics, SSHKeys: in.SSHKeys, UserData: in.UserData}})
}

// update applies edit to tenant t's VM name, if its version is still version (0: any).
func (s storeVMs) update(ctx context.Context, t enjin.TenantID, name string, version int64, edit func(*inventory.VM)) (inventory.VM, error) {
	v, err := s.store.GetVM(ctx, t, name)
	if err != nil {
		return v, err
	}
	if version != 0 {
		v.Version = version
	}
	edit(&v)
	return s.store.UpdateVM(ctx, v)
}

func (s storeVMs) SetVMState(ctx context.Context, t enjin.TenantID, name, state string, version int64) (inventory.VM, error) {
	return s.update(ctx, t, name, version, func(v *inventory.VM) { v.DesiredState = state })
}

func (s storeVMs) RebootVM(ctx context.Context, t enjin.TenantID, name string) (inventory.VM, error) {
	return s.store.GetVM(ctx, t, name)
}

func (s storeVMs) DestroyVM(ctx context.Context, t enjin.TenantID, name string, version int64) error {
	return s.store.DeleteVM(ctx, t, name, version)
}

func (s storeVMs) AddVMNIC(ctx context.Context, t enjin.TenantID, name string, nic api.NICAdd, version int64) (inventory.VM, error) {
	return s.update(ctx, t, name, version, func(v *inventory.VM) {
		v.Spec.NICs = append(v.Spec.NICs, inventory.NIC{MAC: "52:54:00:00:01:01", Network: nic.Network, Rulesets: nic.Rulesets})
	})
}

func (s storeVMs) RemoveVMNIC(ctx context.Context, t enjin.TenantID, name, mac string, version int64) (inventory.VM, error) {
	return s.update(ctx, t, name, version, func(v *inventory.VM) {
		var kept []inventory.NIC
		for _, n := range v.Spec.NICs {
			if n.MAC != mac {
				kept = append(kept, n)
			}
		}
		v.Spec.NICs = kept
	})
}

func (s storeVMs) VMConsole(ctx context.Context, t enjin.TenantID, name string) (string, error) {
	_, err := s.store.GetVM(ctx, t, name)
	return "login: ", err
}

func (s storeVMs) CreateVolume(ctx context.Context, t enjin.TenantID, name string, sizeGB int) (inventory.Volume, error) {
	return s.store.CreateVolume(ctx, inventory.Volume{ID: inventory.NewID(), Tenant: t, Name: name, SizeGB: sizeGB, Node: vmNode})
}

func (s storeVMs) AttachVolume(ctx context.Context, t enjin.TenantID, name, vm string, version int64) (inventory.Volume, error) {
	v, err := s.store.GetVolume(ctx, t, name)
	if err != nil {
		return v, err
	}
	id := ""
	if vm != "" {
		m, err := s.store.GetVM(ctx, t, vm)
		if err != nil {
			return v, err
		}
		id = m.ID
	}
	v.Version = version
	return s.store.AttachVolume(ctx, v, id)
}

func (s storeVMs) DeleteVolume(ctx context.Context, t enjin.TenantID, name string, version int64) error {
	return s.store.DeleteVolume(ctx, t, name, version)
}

func (s storeVMs) GrowHost(ctx context.Context, parent enjin.NodeID, in api.HostCreate) (inventory.Node, error) {
	return s.store.CreateNode(ctx, inventory.Node{ID: enjin.NodeID(string(parent) + "-h1"), Ring: enjin.Ring1, Label: in.Label,
		Supervision: "libvirt", Observation: "self", ParentNode: string(parent)})
}

func (s storeVMs) HostConsole(ctx context.Context, id enjin.NodeID) (string, error) {
	_, err := s.store.GetNode(ctx, id)
	return "ring1 login: ", err
}

func (s storeVMs) RulesetChanged(context.Context, enjin.TenantID, string) error { return nil }

// typedRing1 is ring 1's app API answering from package appapi's types, which apphost's
// handlers answer with too, its handlers registered by operation from appapi's table as
// apphost's are: every optional field set, so the document must have room for
// each. App "missing" is not there (apphost's 404), app "plain" fails in plain text and app
// "locked" is refused ring 0's own credential, as a ring 1 that does not take it would.
func typedRing1(t *testing.T) http.HandlerFunc {
	when := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	rel := appapi.Release{Number: 2, Digest: "sha256-ab", Created: when, Status: "live", Manifest: appapi.Manifest{
		Procfile: map[string]string{"web": "./server"}, Instances: map[string]int{"web": 1}, MemoryMB: 256, CPUMillis: 500,
		Pids: 64, DiskMB: 64, TmpMB: 16, Health: "/", Env: map[string]string{"A": "***"}, OneHost: true,
		Networks: []enjin.AppNetwork{{Name: "net1", Rulesets: []string{"web"}}},
		Cron:     map[string]appapi.CronJob{"tick": {Schedule: "@hourly", Command: "./tick"}}}}
	inst := appapi.InstanceInfo{ID: inventory.NewID(), Name: "web.0", Node: "ring1-test", Type: "web", Release: 2,
		Address: "10.0.0.2", Port: 8080, State: "running", Restarts: 1, Started: when, PID: 42, Exit: "exit status 1",
		CPU: 0.25, MemBytes: 1 << 20, Networks: []appapi.Attachment{{Network: "net1", Interface: "eth1", MAC: "52:54:00:00:00:09", Addresses: []string{"100.77.0.9/24"}}}}
	line := appapi.LogLine{Time: when, Instance: inst.ID, Process: "web.0", Release: 2, Stream: "stdout", Line: "hello"}
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	lines := func(w http.ResponseWriter, vs ...any) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, v := range vs {
			enc.Encode(v)
			w.Write([]byte("\n")) // a keep-alive line
		}
	}
	answer := func(status int, v any) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { reply(w, status, v) }
	}
	handlers := map[appapi.Op]http.HandlerFunc{
		appapi.OpApps: func(w http.ResponseWriter, r *http.Request) {
			reply(w, 200, appapi.AppList{Apps: []appapi.AppInfo{{Tenant: r.PathValue("tenant"), Name: "shop", Release: 2,
				Instances: map[string]int{"web": 1}, Env: map[string]string{"A": "***"}, Share: appapi.Share{Slot: 0, Of: 2}}}})
		},
		appapi.OpDeploy: func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.Header.Get("Accept"), "application/x-ndjson") {
				lines(w, appapi.Event{Event: "unpacked", Release: 2, Files: 3, Bytes: 300}, appapi.Event{Event: "starting", Release: 2, Instances: 1},
					appapi.Event{Event: "failed", Release: 2, Error: "release 2: not healthy in time; rolled back", Code: "unhealthy",
						Reason: &appapi.Reason{Instance: "web.0", Exit: "exit status 1", Logs: []string{"boom"}}})
				return
			}
			if r.URL.Query().Get("delta") == "1" {
				reply(w, 422, appapi.Error{Error: "Procfile: web: empty command", Code: "invalid", Field: "Procfile",
					Reason: &appapi.Reason{Instance: "web.0", Exit: "exit status 1", Logs: []string{}}})
				return
			}
			reply(w, 201, rel)
		},
		appapi.OpReleases:  answer(200, appapi.ReleaseList{Releases: []appapi.Release{rel}}),
		appapi.OpFiles:     answer(200, appapi.Files{Have: []string{"sha256-ab"}}),
		appapi.OpRollback:  answer(200, rel),
		appapi.OpPutEnv:    answer(200, rel),
		appapi.OpPatchEnv:  answer(200, rel),
		appapi.OpInstances: answer(200, appapi.InstanceList{Instances: []appapi.InstanceInfo{inst}}),
		appapi.OpScale:     answer(200, appapi.InstanceList{Instances: []appapi.InstanceInfo{inst}}),
		appapi.OpEnv:       answer(200, appapi.Env{Env: map[string]string{"A": "1"}, Masked: false}),
		appapi.OpDestroy:   func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) },
		appapi.OpRun:       func(w http.ResponseWriter, r *http.Request) { lines(w, line, appapi.JobEnd{Exit: 1, Error: "stopped"}) },
		appapi.OpCron: answer(200, appapi.CronList{Cron: []appapi.CronStatus{{Name: "tick", Schedule: "@hourly", Command: "./tick", Next: when,
			Last: &appapi.CronRun{Started: when, Took: 0.5, Exit: 0, Error: "x"}, Runs: 3, Skipped: 1}}}),
		appapi.OpLogs: func(w http.ResponseWriter, r *http.Request) { lines(w, line) },
	}
	mux := http.NewServeMux()
	for _, rt := range appapi.Routes() {
		if h, ok := handlers[rt.Op]; ok {
			mux.HandleFunc(rt.Pattern(), h)
			delete(handlers, rt.Op)
		} else if !rt.Ring0 {
			t.Errorf("the typed ring 1 answers no %s", rt.Pattern())
		}
	}
	for op := range handlers {
		t.Errorf("the typed ring 1 answers %s, which appapi's table has not", op)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		switch app := appOf(r.URL.Path); app {
		case "missing":
			reply(w, 404, appapi.Error{Error: "app acme/missing: not found", Code: "not_found"})
		case "plain":
			http.Error(w, "internal\nerror", http.StatusInternalServerError)
		case "locked":
			http.Error(w, "missing or wrong token", http.StatusUnauthorized)
		default:
			mux.ServeHTTP(w, r)
		}
	}
}

// appOf is the app named in an app API path, or "".
func appOf(path string) string {
	parts := strings.Split(path, "/") // "", v1, tenants, t, apps, app, …
	if len(parts) > 5 {
		return parts[5]
	}
	return ""
}
