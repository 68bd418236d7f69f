package lanes

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nix-community/go-nix/pkg/nar"

	"github.com/photoncloud/testkit/ultracloud/checks"
)

// EnvNixTools names a directory with mkdir, cat, ln and chmod for
// BuildSmokeSystem's builders (default /bin).
const EnvNixTools = "ULTRACLOUD_NIX_TOOLS"

//go:embed nix/smoke-system.nix
var smokeSystemNix []byte

// BuildSmokeSystem builds deployer-vm-smoke's default target with real
// Nix (nix; "" for nix on PATH) into the host's store and returns its
// store path: three paths (an activation script and a symlink to a
// library, the library, a dependency it references), no nixpkgs, offline.
// stamp goes into the system, so a new stamp builds a new system path.
// The builders use mkdir, cat, ln and chmod from /bin, or from
// $ULTRACLOUD_NIX_TOOLS (a flake check sets coreutils' bin: its sandbox
// has no /bin/mkdir).
func BuildSmokeSystem(ctx context.Context, nix, dir, stamp string) (string, error) {
	expr := filepath.Join(dir, "smoke-system.nix")
	if err := os.WriteFile(expr, smokeSystemNix, 0o644); err != nil {
		return "", err
	}
	args := []string{"build", "-f", expr, "--argstr", "stamp", stamp, "--no-link", "--json"}
	if tools := os.Getenv(EnvNixTools); tools != "" {
		args = append(args, "--argstr", "tools", tools)
	}
	out, err := checks.Nix(ctx, nix, args...)
	if err != nil {
		return "", err
	}
	var built []struct {
		Outputs map[string]string `json:"outputs"`
	}
	if err := json.Unmarshal([]byte(out), &built); err != nil || len(built) != 1 || built[0].Outputs["out"] == "" {
		return "", fmt.Errorf("nix build printed %q: %v", out, err)
	}
	return built[0].Outputs["out"], nil
}

// ClosureOf lists the store paths of top's closure (nix path-info -r).
func ClosureOf(ctx context.Context, nix, top string) ([]string, error) {
	out, err := checks.Nix(ctx, nix, "path-info", "-r", top)
	if err != nil {
		return nil, err
	}
	paths := strings.Fields(out)
	slices.Sort(paths)
	return paths, nil
}

// ExportClosure writes top's closure into dir as a Nix binary cache with
// uncompressed NARs (nix copy --to 'file://DIR?compression=none'), what a
// bundle's nix-cache target holds.
func ExportClosure(ctx context.Context, nix, top, dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	_, err = checks.Nix(ctx, nix, "copy", "--to", "file://"+abs+"?compression=none", top)
	return err
}

// storeManifest lists what each store path holds, one line per entry:
// "file <sha256> <path>" for regular files, "link <target> <path>" for
// symlinks, paths relative to the store directory. It reads nix's own
// serialisation of each path (nix store dump-path, parsed with go-nix's
// NAR reader), so it works for any store nix is pointed at (NIX_REMOTE).
// The guest prints the same with storeManifestScript.
func storeManifest(ctx context.Context, nix string, paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		lines, err := dumpManifest(ctx, nix, p)
		if err != nil {
			return nil, err
		}
		out = append(out, lines...)
	}
	slices.Sort(out)
	return out, nil
}

func dumpManifest(ctx context.Context, nix, p string) ([]string, error) {
	cmd := checks.NixCommand(ctx, nix, "store", "dump-path", p)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines, perr := narManifest(stdout, filepath.Base(p))
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("%w: nix store dump-path %s: %v\n%s", checks.ErrNix, p, err, strings.TrimSpace(stderr.String()))
	}
	return lines, perr
}

// narManifest lists a NAR's files and symlinks under name.
func narManifest(r io.Reader, name string) ([]string, error) {
	nr, err := nar.NewReader(r)
	if err != nil {
		return nil, err
	}
	defer nr.Close()
	var out []string
	for {
		h, err := nr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		rel := strings.TrimSuffix(name+h.Path, "/")
		switch h.Type {
		case nar.TypeSymlink:
			out = append(out, "link "+h.LinkTarget+" "+rel)
		case nar.TypeRegular:
			sum := sha256.New()
			if _, err := io.Copy(sum, nr); err != nil {
				return nil, err
			}
			out = append(out, "file "+hex.EncodeToString(sum.Sum(nil))+" "+rel)
		}
	}
}

// storeManifestScript prints storeManifest's lines on a guest.
func storeManifestScript(paths []string) string {
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	return `cd /nix/store && find ` + strings.Join(names, " ") + ` | while read -r f; do
if [ -L "$f" ]; then echo "link $(readlink "$f") $f"; elif [ -f "$f" ]; then echo "file $(sha256sum < "$f" | cut -d' ' -f1) $f"; fi
done | sort`
}

// diffLines names what is only in want ("missing") and only in got.
func diffLines(want, got []string) []string {
	var d []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			d = append(d, "missing on the node: "+w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			d = append(d, "not host-built: "+g)
		}
	}
	return d
}
