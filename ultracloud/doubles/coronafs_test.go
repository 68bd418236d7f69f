package doubles

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// coronafs over chainfire, two instances: a volume created through one
// is a formatted FAT32 file on its disk, exported over NBD (negotiated
// and read like the kernel does); the other instance lists it; bad
// requests are refused; one VM at a time holds a volume (a second claim
// names the holder), a released or lease-expired claim lets the next VM
// have it; an attached volume cannot be deleted; a deleted volume's file
// is removed from its node's disk.
func TestCoronafs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	cli := oneMember(t, "127.0.0.23", log)
	api := [2]string{}
	state := [2]string{t.TempDir(), t.TempDir()}
	for i := range api {
		api[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
		cfg := CoronafsConfig{Node: fmt.Sprintf("node0%d", i+1), HealthAddr: api[i], Addr: "127.0.0.1",
			NBDListen: fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")), StateDir: state[i]}
		spawn(t, func(ctx context.Context) error { return RunCoronafs(ctx, cfg, cli, log) })
	}
	call := func(i int, method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+api[i]+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	var vol Volume
	waitFor(t, "coronafs", time.Minute, func() error {
		code, body := call(0, http.MethodPost, "/v1/volumes/v1", `{"sizeMiB": 32}`)
		if code != http.StatusCreated {
			return fmt.Errorf("POST: %d %s", code, body)
		}
		return json.Unmarshal([]byte(body), &vol)
	})
	if vol.Node != "node01" || vol.SizeMiB != 32 || vol.FS != VolumeFS || !strings.HasPrefix(vol.Export, "127.0.0.1:") {
		t.Fatalf("volume: %+v", vol)
	}
	img := filepath.Join(state[0], "volumes", "v1.img")
	if fi, err := os.Stat(img); err != nil || fi.Size() != 32<<20 {
		t.Fatalf("volume file: %v %v", fi, err)
	}
	for _, tc := range []struct{ name, path, body string }{
		{"exists", "/v1/volumes/v1", `{}`},
		{"bad name", "/v1/volumes/Bad_Name", `{}`},
		{"too big", "/v1/volumes/v2", `{"sizeMiB": 5000}`},
		{"not json", "/v1/volumes/v3", `nope`},
	} {
		code, body := call(1, http.MethodPost, tc.path, tc.body)
		want := http.StatusBadRequest
		if tc.name == "exists" {
			want = http.StatusConflict
		}
		if code != want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, want)
		}
	}

	// The export, as the kernel's client sees it: the size, and a FAT32
	// boot sector.
	c, err := net.Dial("tcp", vol.Export)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	size, _, err := NBDNegotiate(c, "v1")
	if err != nil || size != 32<<20 {
		t.Fatalf("negotiate: %d %v", size, err)
	}
	cl := &nbdTestClient{c: c}
	code, sector, err := cl.do(nbdCmdRead, 0, 512, nil)
	if err != nil || code != 0 || binary.LittleEndian.Uint16(sector[510:]) != 0xaa55 || string(sector[82:87]) != "FAT32" {
		t.Fatalf("boot sector: %v %d %q", err, code, sector[82:90])
	}
	cl.do(nbdCmdDisc, 0, 0, nil)
	c.Close()

	// One VM at a time.
	ctx := t.Context()
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	a := VolumeAttachment{Volume: "v1", VM: "a", VMID: "ida", Node: "node04", Since: time.Now().UTC()}
	if _, err := claimVolume(ctx, cli, lease.ID, a); err != nil {
		t.Fatal(err)
	}
	if _, err := claimVolume(ctx, cli, lease.ID, a); err != nil {
		t.Fatalf("the same VM again: %v", err)
	}
	b := VolumeAttachment{Volume: "v1", VM: "b", VMID: "idb", Node: "node05", Since: time.Now().UTC()}
	if _, err := claimVolume(ctx, cli, lease.ID, b); !errors.Is(err, ErrVolumeAttached) || !strings.Contains(err.Error(), "VM a on node04") {
		t.Fatalf("a second VM: %v", err)
	}
	if _, err := claimVolume(ctx, cli, lease.ID, VolumeAttachment{Volume: "nope", VM: "b", VMID: "idb", Node: "node05"}); err == nil || !strings.Contains(err.Error(), "no volume nope") {
		t.Fatalf("no such volume: %v", err)
	}
	code2, body := call(1, http.MethodGet, "/v1/volumes/v1", "")
	var got Volume
	if json.Unmarshal([]byte(body), &got); code2 != http.StatusOK || got.Attachment == nil || got.Attachment.VM != "a" {
		t.Fatalf("GET through the other instance: %d %s", code2, body)
	}
	if code, body := call(1, http.MethodDelete, "/v1/volumes/v1", ""); code != http.StatusConflict || !strings.Contains(body, "VM a on node04") {
		t.Fatalf("delete while attached: %d %s", code, body)
	}
	if err := releaseVolume(ctx, cli, "v1", "idb"); err != nil { // not b's: nothing happens
		t.Fatal(err)
	}
	if _, err := claimVolume(ctx, cli, lease.ID, b); !errors.Is(err, ErrVolumeAttached) {
		t.Fatalf("b after releasing someone else's claim: %v", err)
	}
	if err := releaseVolume(ctx, cli, "v1", "ida"); err != nil {
		t.Fatal(err)
	}
	short, err := cli.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := claimVolume(ctx, cli, short.ID, b); err != nil {
		t.Fatalf("b after a let go: %v", err)
	}
	// b's worker dies: its lease expires and the volume is free again.
	waitFor(t, "b's claim to expire with its lease", 30*time.Second, func() error {
		_, err := claimVolume(ctx, cli, lease.ID, a)
		return err
	})
	releaseVolume(ctx, cli, "v1", "ida")

	if code, body := call(1, http.MethodDelete, "/v1/volumes/v1", ""); code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", code, body)
	}
	if code, _ := call(0, http.MethodGet, "/v1/volumes/v1", ""); code != http.StatusNotFound {
		t.Fatalf("GET a deleted volume: %d", code)
	}
	// Its node removes the file once it is a minute old.
	old := time.Now().Add(-2 * time.Minute)
	os.Chtimes(img, old, old)
	waitFor(t, "the deleted volume's file to go", 30*time.Second, func() error {
		if _, err := os.Stat(img); err == nil {
			return errors.New("still there")
		}
		return nil
	})
}
