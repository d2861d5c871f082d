package inventory_test

import (
	"errors"
	"testing"

	"enjin"
	"enjin/services/inventory"
)

// VM and volume records: names unique per tenant, versions checked, machine types bounded, a
// volume attached only to a VM of its own tenant on its own node and only to one, and never
// deleted while attached.
func TestVMsAndVolumes(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	register(t, s, "n1", "")
	register(t, s, "n2", "")
	for _, tn := range []string{"acme", "beta"} {
		if _, err := s.CreateTenant(ctx, inventory.Tenant{ID: enjin.TenantID(tn)}); err != nil {
			t.Fatal(err)
		}
	}
	types, err := s.MachineTypes(ctx)
	if err != nil || len(types) != 4 || types[0].Name != "tiny" {
		t.Fatalf("machine types: %+v %v", types, err)
	}
	if _, err := s.CreateMachineType(ctx, inventory.MachineType{Name: "huge", VCPUs: 1000, MemoryMB: 1024, DiskGB: 1}); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("1000 vcpus: %v, want ErrInvalid", err)
	}
	vm := inventory.VM{ID: "6f1d2b8e-0000-4000-8000-000000000001", Tenant: "acme", Name: "vm1", Image: "img", MachineType: "small", Node: "n1"}
	v1, err := s.CreateVM(ctx, vm)
	if err != nil || v1.DesiredState != "running" || v1.ObservedState != "pending" || v1.Version != 1 {
		t.Fatalf("create vm: %+v %v", v1, err)
	}
	vm.ID = "6f1d2b8e-0000-4000-8000-000000000002"
	if _, err := s.CreateVM(ctx, vm); !errors.Is(err, inventory.ErrExists) {
		t.Fatalf("the same name twice: %v", err)
	}
	vm.MachineType = "nope"
	vm.Name = "vm2"
	if _, err := s.CreateVM(ctx, vm); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("an unknown machine type: %v", err)
	}
	v1.DesiredState = "stopped"
	v2, err := s.UpdateVM(ctx, v1)
	if err != nil || v2.Version != 2 || v2.DesiredState != "stopped" {
		t.Fatalf("update: %+v %v", v2, err)
	}
	if _, err := s.UpdateVM(ctx, v1); !errors.Is(err, inventory.ErrConflict) {
		t.Fatalf("a stale update: %v", err)
	}
	if err := s.SetVMObserved(ctx, v1.ID, "running", []string{"100.64.0.2"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetVM(ctx, "acme", "vm1"); got.ObservedState != "running" || got.Version != 2 || len(got.Addresses) != 1 {
		t.Fatalf("observed: %+v", got)
	}

	vol, err := s.CreateVolume(ctx, inventory.Volume{ID: "6f1d2b8e-0000-4000-8000-0000000000a1", Tenant: "acme", Name: "data", SizeGB: 1, Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateVolume(ctx, inventory.Volume{ID: "6f1d2b8e-0000-4000-8000-0000000000a2", Tenant: "acme", Name: "far", SizeGB: 1, Node: "n2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AttachVolume(ctx, other, v1.ID); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("a volume on another node: %v, want ErrInvalid", err)
	}
	bvol, err := s.CreateVolume(ctx, inventory.Volume{ID: "6f1d2b8e-0000-4000-8000-0000000000b1", Tenant: "beta", Name: "data", SizeGB: 1, Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AttachVolume(ctx, bvol, v1.ID); !errors.Is(err, inventory.ErrInvalid) {
		t.Fatalf("another tenant's volume: %v, want ErrInvalid", err)
	}
	att, err := s.AttachVolume(ctx, vol, v1.ID)
	if err != nil || att.VM != v1.ID {
		t.Fatalf("attach: %+v %v", att, err)
	}
	if err := s.DeleteVolume(ctx, "acme", "data", att.Version); !errors.Is(err, inventory.ErrInUse) {
		t.Fatalf("deleting an attached volume: %v", err)
	}
	cur, _ := s.GetVM(ctx, "acme", "vm1")
	if err := s.DeleteVM(ctx, "acme", "vm1", cur.Version); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetVolume(ctx, "acme", "data"); got.VM != "" {
		t.Fatalf("the volume of a deleted VM is still attached: %+v", got)
	}
	got, _ := s.GetVolume(ctx, "acme", "data")
	if err := s.DeleteVolume(ctx, "acme", "data", got.Version); err != nil {
		t.Fatal(err)
	}
}
