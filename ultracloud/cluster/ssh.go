package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// ErrNoSSH: the cluster was started without keys (WithSSH).
var ErrNoSSH = errors.New("no SSH keys")

// SSHAddress is the 127.0.0.1 address forwarded to node's port 22.
func (c *Cluster) SSHAddress(ctx context.Context, node string) (string, error) {
	m, err := c.Node(node)
	if err != nil {
		return "", err
	}
	return m.HostForward(ctx, 22)
}

// SSH logs in to node as root with the cluster's key, checking its host
// key, and retries while its sshd is not up yet (until ctx ends).
func (c *Cluster) SSH(ctx context.Context, node string) (*ssh.Client, error) {
	if c.o.keys == nil {
		return nil, fmt.Errorf("%w: start the cluster WithSSH", ErrNoSSH)
	}
	addr, err := c.SSHAddress(ctx, node)
	if err != nil {
		return nil, err
	}
	return DialSSH(ctx, addr, node, c.o.keys)
}

// ErrLogin is an SSH login the server refused (the key is not
// authorized): trying again cannot help.
var ErrLogin = errors.New("ssh login refused")

// DialSSH logs in to addr as root with keys, holding the server to node's
// host key. Refused or reset connections (a guest still booting) are
// retried until ctx ends; authentication and host key errors are not.
func DialSSH(ctx context.Context, addr, node string, keys *Keys) (*ssh.Client, error) {
	cfg := &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(keys.Signer())},
		HostKeyCallback: keys.HostKeyCallback(node),
		// The guest's sshd gives a handshake 30 s; a TCG guest on a loaded
		// host took close to 10 s (CI of fa91f3c: a handshake done just as
		// the old 10 s deadline fired, and the client's first read failed).
		Timeout: 30 * time.Second,
	}
	for {
		client, err := dialOnce(ctx, addr, cfg)
		if err == nil {
			return client, nil
		}
		if isAuthError(err) {
			return nil, fmt.Errorf("ssh %s (%s): %w: %w", node, addr, ErrLogin, err)
		}
		if errors.Is(err, ErrHostKey) {
			return nil, fmt.Errorf("ssh %s (%s): %w", node, addr, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("ssh %s (%s): %w (last: %v)", node, addr, ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func dialOnce(ctx context.Context, addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	d := net.Dialer{Timeout: cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The handshake ends with ctx (a slirp forward accepts at once and
	// only then finds the guest's port closed).
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(cfg.Timeout))
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

func isAuthError(err error) bool {
	var se *ssh.ServerAuthError
	return errors.As(err, &se) || (err != nil && strings.Contains(err.Error(), "unable to authenticate"))
}

// RunSSH runs cmd in a new session of client with the given stdio and
// returns its exit status (a signal's death is 128+signal, like a shell);
// err is for what kept the command from running or reporting.
func RunSSH(ctx context.Context, client *ssh.Client, cmd string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	sess, err := client.NewSession()
	if err != nil {
		return -1, err
	}
	defer sess.Close()
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	err = sess.Run(cmd)
	return ExitStatus(ctx, err)
}

// ExitStatus turns a session's Run/Wait error into an exit status.
func ExitStatus(ctx context.Context, err error) (int, error) {
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee):
		if ee.Signal() != "" {
			return 128 + signalNumber(ee.Signal()), nil
		}
		return ee.ExitStatus(), nil
	case ctx.Err() != nil:
		return -1, ctx.Err()
	case errors.As(err, &missing):
		return -1, fmt.Errorf("the command ended without an exit status (connection lost?): %w", err)
	}
	return -1, err
}

func signalNumber(name string) int {
	n := map[string]int{"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "ABRT": 6, "FPE": 8, "KILL": 9,
		"USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15}[name]
	if n == 0 {
		n = 1
	}
	return n
}
