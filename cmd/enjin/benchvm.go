package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"enjin"
	"enjin/bench"
	"enjin/guest"
	"enjin/services/inventory"
	"enjin/supervisors/libvirt"
)

// guestUp is what the test guest's /init prints on the serial console once it serves.
const guestUp = "enjin-guest: up"

// vmFlags are the flags of `enjin bench vm`.
type vmFlags struct {
	kernel, initrd, typ, tenant string
	runs                        int
	out                         string
}

// vmFigures are the benchmark's results, every run and the medians.
type vmFigures struct {
	Settings   string    `json:"settings"`
	Accel      string    `json:"accel"`
	EnjinMs    []float64 `json:"enjin_ms"`     // vms create → the guest's first signed heartbeat stored
	BareMs     []float64 `json:"bare_qemu_ms"` // qemu-system-x86_64 started → "enjin-guest: up"
	EnjinP50Ms float64   `json:"enjin_p50_ms"`
	BareP50Ms  float64   `json:"bare_qemu_p50_ms"`
	Ratio      float64   `json:"ratio"`
}

func benchVMCmd(g *globals) *cobra.Command {
	f := vmFlags{runs: 10, typ: "small", tenant: "bench"}
	c := &cobra.Command{
		Use:   "vm --kernel KERNEL --initrd INITRD",
		Short: "vms create → the guest's first signed heartbeat stored, next to a bare qemu boot of the same kernel",
		Long: `Against the running cloud (enjin up), RUNS times in turn: create a VM from KERNEL and
INITRD (deploy/guest-image.sh builds them) and time until ring 0 stores a heartbeat the
guest signed itself, then destroy it; and start qemu-system-x86_64 by hand on the same
kernel, initramfs, size and accelerator, and time until the guest's /init prints
"enjin-guest: up". Prints both medians and their ratio. The image, the VMs and the tenant
(when the bench made it) are removed at the end.`,
		Example: "  enjin bench vm --kernel var/guest/vmlinuz --initrd var/guest/initrd.img --runs 10",
		Args:    argsBetween(0, 0, "no arguments"),
		RunE:    func(c *cobra.Command, _ []string) error { return benchVM(c.Context(), g, f, c.OutOrStdout()) },
	}
	fs := c.Flags()
	fs.StringVar(&f.kernel, "kernel", "", "the guest's kernel (bzImage)")
	fs.StringVar(&f.initrd, "initrd", "", "the guest's initramfs")
	fs.IntVar(&f.runs, "runs", f.runs, "runs of each")
	fs.StringVar(&f.typ, "type", f.typ, "the machine type")
	fs.StringVar(&f.tenant, "tenant", f.tenant, "the tenant the VMs are made in (made if missing)")
	fs.StringVarP(&f.out, "output", "o", "text", "output format: text or json")
	return c
}

func benchVM(ctx context.Context, g *globals, f vmFlags, stdout io.Writer) error {
	switch {
	case f.kernel == "" || f.initrd == "":
		return usagef("bench vm: --kernel and --initrd are required (deploy/guest-image.sh DIR builds them)")
	case f.runs < 1 || f.runs > 1000:
		return usagef("bench vm: --runs: want 1 to 1000")
	case f.out != "text" && f.out != "json":
		return usagef("bench vm: -o: want text or json")
	case enjin.TenantID(f.tenant).Validate() != nil:
		return usagef("bench vm: --tenant %q: want a tenant name", f.tenant)
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return errors.New("bench vm: qemu-system-x86_64 not found; install it with: apt-get install -y qemu-system-x86")
	}
	cl, err := g.client()
	if err != nil {
		return err
	}
	progress := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "bench vm: "+format+"\n", a...) }
	mt, err := machineType(ctx, cl, f.typ)
	if err != nil {
		return err
	}
	b := &vmBench{cl: cl, f: f, mt: mt, qemu: qemu, progress: progress}
	defer b.cleanup()
	if err := b.setUp(ctx); err != nil {
		return err
	}
	accel := "tcg"
	if libvirt.HasKVM() {
		accel = "kvm"
	}
	fig := vmFigures{Accel: accel, Settings: fmt.Sprintf("machine type %s (%d vCPU, %d MiB), %s, %d runs of each, alternating",
		mt.Name, mt.VCPUs, mt.MemoryMB, accel, f.runs)}
	var enjin, bare []time.Duration
	for i := 1; i <= f.runs; i++ {
		d, err := b.enjinRun(ctx, i)
		if err != nil {
			return fmt.Errorf("bench vm: run %d: %w", i, err)
		}
		enjin = append(enjin, d)
		q, err := b.bareRun(ctx, accel)
		if err != nil {
			return fmt.Errorf("bench vm: bare qemu %d: %w", i, err)
		}
		bare = append(bare, q)
		progress("run %d/%d: enjin %v, bare qemu %v", i, f.runs, d.Round(time.Millisecond), q.Round(time.Millisecond))
		fig.EnjinMs = append(fig.EnjinMs, float64(d)/1e6)
		fig.BareMs = append(fig.BareMs, float64(q)/1e6)
	}
	fig.EnjinP50Ms, fig.BareP50Ms = bench.PercentileMs(enjin, 50), bench.PercentileMs(bare, 50)
	fig.Ratio = fig.EnjinP50Ms / fig.BareP50Ms
	if f.out == "json" {
		return writeJSON(stdout, fig)
	}
	fmt.Fprintf(stdout, "%s\n", fig.Settings)
	fmt.Fprintf(stdout, "enjin: vms create → the guest's own signed heartbeat stored in ring 0: p50 %.0f ms\n", fig.EnjinP50Ms)
	fmt.Fprintf(stdout, "bare:  qemu-system-x86_64 started → %q on its console:      p50 %.0f ms\n", guestUp, fig.BareP50Ms)
	fmt.Fprintf(stdout, "ratio enjin/bare: %.2f\n", fig.Ratio)
	return nil
}

func machineType(ctx context.Context, cl *client, name string) (inventory.MachineType, error) {
	var r struct {
		MachineTypes []inventory.MachineType `json:"machine_types"`
	}
	if err := cl.get(ctx, "/v1/machine-types", &r); err != nil {
		return inventory.MachineType{}, err
	}
	for _, m := range r.MachineTypes {
		if m.Name == name {
			return m, nil
		}
	}
	return inventory.MachineType{}, fmt.Errorf("bench vm: no machine type %q (enjin machine-types ls)", name)
}

// vmBench is one run of `enjin bench vm`: what it made, to remove at the end.
type vmBench struct {
	cl       *client
	f        vmFlags
	mt       inventory.MachineType
	qemu     string
	progress func(string, ...any)

	dir        string // the bare runs' files
	image      string // the uploaded image's id
	madeTenant bool
	vm         string // the VM that exists now, if any
	imageName  string
}

func (b *vmBench) tenantPath() string { return "/v1/tenants/" + url.PathEscape(b.f.tenant) }

// setUp makes the tenant if it is missing and uploads the image, named for this run.
func (b *vmBench) setUp(ctx context.Context) error {
	var err error
	if b.dir, err = os.MkdirTemp("", "enjin-bench-vm-"); err != nil {
		return err
	}
	var ae *apiError
	if err := b.cl.get(ctx, b.tenantPath(), nil); errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		if err := b.cl.do(ctx, "POST", "/v1/tenants", nil, map[string]string{"name": b.f.tenant}, nil); err != nil {
			return err
		}
		b.madeTenant = true
	} else if err != nil {
		return err
	}
	b.imageName = fmt.Sprintf("bench-vm-%d", time.Now().Unix())
	u := &upload{kernel: b.f.kernel, initrd: b.f.initrd, name: b.imageName, tenant: b.f.tenant}
	if err := u.check(nil); err != nil {
		return err
	}
	im, err := uploadKernel(ctx, b.cl, u, io.Discard)
	if err != nil {
		return err
	}
	b.image = im.ID
	b.progress("uploaded %s and %s as image %s/%s", filepath.Base(b.f.kernel), filepath.Base(b.f.initrd), b.f.tenant, b.imageName)
	return nil
}

// enjinRun creates VM number i, waits for a heartbeat it signed itself to be stored, and
// destroys it; it returns the time from the create request to the stored heartbeat.
func (b *vmBench) enjinRun(ctx context.Context, i int) (time.Duration, error) {
	name := fmt.Sprintf("%s-%d", b.imageName, i)
	var vm inventory.VM
	t0 := time.Now()
	body := map[string]any{"name": name, "image": b.image, "machine_type": b.mt.Name}
	if err := b.cl.long(ctx, "POST", b.tenantPath()+"/vms", nil, body, &vm); err != nil {
		return 0, err
	}
	b.vm = name
	for {
		var r struct {
			Observations []struct {
				Observer string `json:"observer"`
			} `json:"observations"`
		}
		if err := b.cl.get(ctx, "/v1/nodes/"+url.PathEscape(vm.ID)+"/observations?limit=10", &r); err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
				return 0, err
			}
		}
		for _, o := range r.Observations {
			if o.Observer == "" { // the VM's own, not its host's
				d := time.Since(t0)
				return d, b.destroy(ctx)
			}
		}
		if time.Since(t0) > 5*time.Minute {
			return 0, fmt.Errorf("VM %s/%s: no heartbeat of its own stored within 5 minutes (enjin vms console %s/%s)",
				b.f.tenant, name, b.f.tenant, name)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (b *vmBench) destroy(ctx context.Context) error {
	if b.vm == "" {
		return nil
	}
	path := b.tenantPath() + "/vms/" + url.PathEscape(b.vm)
	hdr, err := b.cl.ifMatch(ctx, path)
	if err == nil {
		err = b.cl.long(ctx, "DELETE", path, hdr, nil, nil)
	}
	if err == nil {
		b.vm = ""
	}
	return err
}

// bareRun boots the kernel and initramfs with QEMU by hand, as libvirt would (same machine,
// accelerator, size, kernel command line, metadata over fw_cfg with a static address so the
// guest waits on no DHCP, no NIC), and returns the time until the guest says it is up.
func (b *vmBench) bareRun(ctx context.Context, accel string) (time.Duration, error) {
	meta := guest.Meta{Node: "bench-bare", Tenant: enjin.TenantID(b.f.tenant), Hostname: "bench-bare",
		Addresses: []netip.Prefix{netip.MustParsePrefix("198.18.0.2/24")}, Gateway: netip.MustParseAddr("198.18.0.1")}
	mb, _ := json.Marshal(meta)
	metaFile, log := filepath.Join(b.dir, "meta.json"), filepath.Join(b.dir, "console.log")
	if err := os.WriteFile(metaFile, mb, 0o600); err != nil {
		return 0, err
	}
	os.Remove(log)
	args := []string{"-machine", "pc,accel=" + accel, "-m", fmt.Sprint(b.mt.MemoryMB), "-smp", fmt.Sprint(b.mt.VCPUs),
		"-nodefaults", "-no-user-config", "-display", "none", "-serial", "file:" + log,
		"-kernel", b.f.kernel, "-initrd", b.f.initrd, "-append", "console=ttyS0 panic=-1",
		"-fw_cfg", "name=" + guest.FwCfgName + ",file=" + metaFile}
	if accel == "kvm" {
		args = append(args, "-cpu", "host")
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(qctx, b.qemu, args...)
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for {
		if out, _ := os.ReadFile(log); strings.Contains(string(out), guestUp) {
			return time.Since(t0), nil
		}
		select {
		case <-qctx.Done():
			out, _ := os.ReadFile(log)
			return 0, fmt.Errorf("no %q within 5 minutes; the console:\n%s", guestUp, tail(string(out), 20))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// cleanup removes what the bench made, even after Ctrl-C.
func (b *vmBench) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := b.destroy(ctx); err != nil {
		b.progress("VM %s/%s not destroyed: %v", b.f.tenant, b.vm, err)
	}
	if b.image != "" {
		if err := b.cl.do(ctx, "DELETE", "/v1/images/"+url.PathEscape(b.image), nil, nil, nil); err != nil {
			b.progress("image %s not removed: %v", b.image, err)
		}
	}
	if b.madeTenant {
		hdr, err := b.cl.ifMatch(ctx, b.tenantPath())
		if err == nil {
			err = b.cl.do(ctx, "DELETE", b.tenantPath(), hdr, nil, nil)
		}
		if err != nil {
			b.progress("tenant %s not removed: %v", b.f.tenant, err)
		}
	}
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
