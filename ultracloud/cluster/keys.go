package cluster

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
)

// ErrHostKey: a node presented a host key other than the one it was given
// (or first showed).
var ErrHostKey = errors.New("host key mismatch")

// Keys are a cluster's SSH keys, kept in one directory: the client key root
// logs in with (id_ed25519, OpenSSH format, usable with `ssh -i`) and one
// host key per node (hosts/<node>), all created on first use.
type Keys struct {
	dir    string
	signer ssh.Signer
	pub    ssh.PublicKey
	mu     sync.Mutex
}

// LoadKeys opens the keys in dir, creating the client key when missing.
func LoadKeys(dir string) (*Keys, error) {
	if err := os.MkdirAll(filepath.Join(dir, "hosts"), 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "id_ed25519")
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		block, err := ssh.MarshalPrivateKey(priv, "ultracloud cluster")
		if err != nil {
			return nil, err
		}
		raw = pem.EncodeToMemory(block)
		if err := writeNew(path, raw, 0o600); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("client key %s: %w; remove it to make a new one", path, err)
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		return nil, err
	}
	return &Keys{dir: dir, signer: signer, pub: signer.PublicKey()}, nil
}

// Dir is where the keys are.
func (k *Keys) Dir() string { return k.dir }

// ClientKeyPath is the client's private key file (for `ssh -i`).
func (k *Keys) ClientKeyPath() string { return filepath.Join(k.dir, "id_ed25519") }

// Signer is the client key.
func (k *Keys) Signer() ssh.Signer { return k.signer }

// hostSeed returns node's host key seed, creating it on first use.
func (k *Keys) hostSeed(node string) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	path := filepath.Join(k.dir, "hosts", node)
	seed, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		seed = make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, err
		}
		return seed, writeNew(path, seed, 0o600)
	}
	if err == nil && len(seed) != ed25519.SeedSize {
		err = fmt.Errorf("host key %s has %d bytes, want %d; remove it to make a new one", path, len(seed), ed25519.SeedSize)
	}
	return seed, err
}

// HostPublicKey is the host key node was given.
func (k *Keys) HostPublicKey(node string) (ssh.PublicKey, error) {
	seed, err := k.hostSeed(node)
	if err != nil {
		return nil, err
	}
	return ssh.NewPublicKey(ed25519.NewKeyFromSeed(seed).Public())
}

// Credentials are the SMBIOS OEM strings that hand node its keys: the
// fixture guest's sshd reads the ultracloud.ssh.* pair; systemd (NixOS)
// provisions root's authorized_keys from the ssh.authorized_keys.root
// credential.
func (k *Keys) Credentials(node string) ([]string, error) {
	seed, err := k.hostSeed(node)
	if err != nil {
		return nil, err
	}
	return []string{
		"ultracloud.ssh.host-key=" + base64.StdEncoding.EncodeToString(seed),
		"ultracloud.ssh.authorized-key=" + base64.StdEncoding.EncodeToString(k.pub.Marshal()),
		"io.systemd.credential:ssh.authorized_keys.root=" + string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(k.pub))),
	}, nil
}

// HostKeyCallback accepts only the host key node was given: an image
// that runs SSH must serve the key of its ultracloud.ssh.host-key
// credential.
func (k *Keys) HostKeyCallback(node string) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		given, err := k.HostPublicKey(node)
		if err != nil {
			return err
		}
		if !bytes.Equal(key.Marshal(), given.Marshal()) {
			return fmt.Errorf("%w: %s presented %s, expected %s (its ultracloud.ssh.host-key credential)", ErrHostKey, node,
				ssh.FingerprintSHA256(key), ssh.FingerprintSHA256(given))
		}
		return nil
	}
}

// writeNew writes a file that must not exist yet (two writers: one wins,
// the other reads its key).
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
