package inventory_test

import (
	"errors"
	"strings"
	"testing"

	"enjin"
	"enjin/services/inventory"
)

func digest(c byte) string { return "sha256-" + strings.Repeat(string(c), 64) }

func disk(name string, tenant enjin.TenantID, d string) inventory.Image {
	return inventory.Image{Name: name, Tenant: tenant, Kind: "disk", Format: "qcow2", SourceFormat: "raw",
		Size: 1 << 20, VirtualSize: 4 << 20, Digest: d}
}

// TestImages: records per owner with unique names, filters, the digest's users, deletion,
// and a tenant's images going with it; the table refuses records that break its rules.
func TestImages(t *testing.T) {
	s := open(t)
	ctx := t.Context()
	for _, tn := range []enjin.TenantID{"acme", "globex"} {
		if _, err := s.CreateTenant(ctx, inventory.Tenant{ID: tn}); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := s.CreateImage(ctx, disk("debian", "", digest('a')))
	if err != nil || !pub.Public || pub.Tenant != "" || !enjin.IsUUID(pub.ID) || pub.VirtualSize != 4<<20 || pub.Kernel != nil {
		t.Fatalf("public image: %+v, %v", pub, err)
	}
	acme, err := s.CreateImage(ctx, disk("debian", "acme", digest('a'))) // same name, other owner, same file
	if err != nil || acme.Public || acme.Tenant != "acme" {
		t.Fatalf("acme's image: %+v, %v", acme, err)
	}
	k, err := s.CreateImage(ctx, inventory.Image{Name: "vmlinuz", Tenant: "globex", Kind: "kernel", Format: "bzimage", SourceFormat: "bzimage",
		Size: 300, Digest: digest('b'), Kernel: &inventory.ImageFile{Digest: digest('c'), Size: 100}, Initrd: &inventory.ImageFile{Digest: digest('d'), Size: 200}})
	if err != nil || k.Kernel == nil || k.Initrd.Size != 200 || k.VirtualSize != 0 {
		t.Fatalf("kernel image: %+v, %v", k, err)
	}

	for _, tc := range []struct {
		name string
		im   inventory.Image
		want error
	}{
		{"name taken by its owner", disk("debian", "acme", digest('e')), inventory.ErrExists},
		{"public name taken", disk("debian", "", digest('e')), inventory.ErrExists},
		{"unknown tenant", disk("x", "nobody", digest('e')), inventory.ErrInvalid},
		{"name not a slug", disk("Debian 12", "", digest('e')), inventory.ErrInvalid},
		{"bad digest", disk("x", "", "md5-00"), inventory.ErrInvalid},
		{"disk without virtual size", inventory.Image{Name: "x", Kind: "disk", Format: "qcow2", SourceFormat: "raw", Size: 1, Digest: digest('e')}, inventory.ErrInvalid},
		{"kernel without parts", inventory.Image{Name: "x", Kind: "kernel", Format: "bzimage", SourceFormat: "bzimage", Size: 1, Digest: digest('e')}, inventory.ErrInvalid},
		{"disk stored raw", inventory.Image{Name: "x", Kind: "disk", Format: "raw", SourceFormat: "raw", Size: 1, VirtualSize: 1, Digest: digest('e')}, inventory.ErrInvalid},
	} {
		if _, err := s.CreateImage(ctx, tc.im); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v want %v", tc.name, err, tc.want)
		}
	}

	names := func(f inventory.ImageFilter) string {
		ims, err := s.ListImages(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, im := range ims {
			out = append(out, string(im.Tenant)+"/"+im.Name)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		f    inventory.ImageFilter
		want string
	}{
		{inventory.ImageFilter{}, "/debian acme/debian globex/vmlinuz"},
		{inventory.ImageFilter{Owners: []enjin.TenantID{"", "acme"}}, "/debian acme/debian"},
		{inventory.ImageFilter{Owners: []enjin.TenantID{""}}, "/debian"},
		{inventory.ImageFilter{Owners: []enjin.TenantID{"globex"}}, "globex/vmlinuz"},
		{inventory.ImageFilter{Owners: []enjin.TenantID{}}, ""},
		{inventory.ImageFilter{Name: "debian"}, "/debian acme/debian"},
		{inventory.ImageFilter{Owners: []enjin.TenantID{"acme"}, Name: "vmlinuz"}, ""},
	} {
		if got := names(tc.f); got != tc.want {
			t.Errorf("ListImages(%+v): got %q want %q", tc.f, got, tc.want)
		}
	}

	if got, err := s.GetImage(ctx, k.ID); err != nil || got.Kernel.Digest != digest('c') {
		t.Fatalf("get kernel: %+v, %v", got, err)
	}
	if _, err := s.DeleteImage(ctx, pub.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetImage(ctx, pub.ID); !errors.Is(err, inventory.ErrNotFound) {
		t.Fatalf("deleted image: %v", err)
	}
	if used, err := s.ImageDigestUsed(ctx, digest('a')); err != nil || !used {
		t.Fatalf("digest a after one of two records went: used %v, %v", used, err)
	}
	if err := s.DeleteTenant(ctx, "acme", 1); err != nil {
		t.Fatal(err)
	}
	if used, err := s.ImageDigestUsed(ctx, digest('a')); err != nil || used {
		t.Fatalf("digest a after its tenant went: used %v, %v", used, err)
	}
	if _, err := s.DeleteImage(ctx, acme.ID); !errors.Is(err, inventory.ErrNotFound) {
		t.Fatalf("delete a record gone with its tenant: %v", err)
	}
}
