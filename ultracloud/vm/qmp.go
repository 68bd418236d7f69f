package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
)

// Event is a QMP event.
type Event = qmp.Event

// defaultQMPTimeout bounds a QMP command whose context has no deadline.
const defaultQMPTimeout = 30 * time.Second

// QMP is a machine's QEMU Machine Protocol connection. One goroutine always
// drains events (go-qemu blocks command replies otherwise) and keeps them
// for WaitEvent; every command takes a context.
type QMP struct {
	mon *qmp.SocketMonitor

	mu     sync.Mutex
	events []Event
	seq    int // number of events received
	change chan struct{}
	closed bool
}

// dialQMP connects to the QMP socket, retrying until it exists, the context
// ends, or exited closes.
func dialQMP(ctx context.Context, path string, exited <-chan struct{}) (*QMP, error) {
	var last error
	for {
		mon, err := qmp.NewSocketMonitor("unix", path, time.Second)
		if err == nil {
			if err = mon.Connect(); err == nil {
				q := &QMP{mon: mon, change: make(chan struct{})}
				events, _ := mon.Events(context.Background())
				go q.drain(events)
				return q, nil
			}
			mon.Disconnect()
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("QMP %s: %w (last error: %v)", path, ctx.Err(), last)
		case <-exited:
			return nil, fmt.Errorf("%w before its QMP socket answered (%v)", ErrExited, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (q *QMP) drain(events <-chan Event) {
	for e := range events {
		q.mu.Lock()
		q.events = append(q.events, e)
		if len(q.events) > 1024 {
			q.events = q.events[len(q.events)-1024:]
		}
		q.seq++
		close(q.change)
		q.change = make(chan struct{})
		q.mu.Unlock()
	}
	q.mu.Lock()
	q.closed = true
	close(q.change)
	q.mu.Unlock()
}

// Mark returns the number of events seen so far; WaitEventAfter(mark, …)
// then sees only later events. Take a mark before the action whose event
// you will wait for.
func (q *QMP) Mark() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.seq
}

// WaitEvent waits for an event named name (and matching match, if non-nil)
// that arrives after the call.
func (q *QMP) WaitEvent(ctx context.Context, name string, match func(Event) bool) (Event, error) {
	return q.WaitEventAfter(ctx, q.Mark(), name, match)
}

// WaitEventAfter waits for an event named name after mark (see Mark).
func (q *QMP) WaitEventAfter(ctx context.Context, mark int, name string, match func(Event) bool) (Event, error) {
	for {
		q.mu.Lock()
		first := q.seq - len(q.events) // sequence number of events[0]
		for i := max(mark-first, 0); i < len(q.events); i++ {
			e := q.events[i]
			if e.Event == name && (match == nil || match(e)) {
				q.mu.Unlock()
				return e, nil
			}
		}
		mark = q.seq
		closed, change := q.closed, q.change
		q.mu.Unlock()
		if closed {
			return Event{}, fmt.Errorf("%w while waiting for QMP event %s", ErrExited, name)
		}
		select {
		case <-ctx.Done():
			return Event{}, fmt.Errorf("waiting for QMP event %s: %w", name, ctx.Err())
		case <-change:
		}
	}
}

// Run executes a QMP command with arguments (nil for none) and decodes the
// "return" member into out (nil to ignore). Never use it for commands whose
// reply can exceed 64 KiB (such as query-qmp-schema): go-qemu's reader
// drops the connection on longer lines.
func (q *QMP) Run(ctx context.Context, command string, args any, out any) error {
	cmd := map[string]any{"execute": command}
	if args != nil {
		cmd["arguments"] = args
	}
	raw, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultQMPTimeout)
		defer cancel()
	}
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := q.mon.Run(raw)
		ch <- result{b, err}
	}()
	select {
	case <-ctx.Done():
		return fmt.Errorf("QMP %s: %w", command, ctx.Err())
	case r := <-ch:
		if r.err != nil {
			return fmt.Errorf("QMP %s: %w", command, r.err)
		}
		if out != nil {
			var env struct {
				Return json.RawMessage `json:"return"`
			}
			if err := json.Unmarshal(r.b, &env); err != nil {
				return fmt.Errorf("QMP %s reply: %w", command, err)
			}
			if err := json.Unmarshal(env.Return, out); err != nil {
				return fmt.Errorf("QMP %s reply: %w", command, err)
			}
		}
		return nil
	}
}

// SendKey presses keys together (QEMU qcodes: "ctrl", "alt", "delete",
// "ret", "a", …), as the NixOS driver's send_key does.
func (q *QMP) SendKey(ctx context.Context, keys ...string) error {
	type key struct {
		Type string `json:"type"`
		Data string `json:"data"`
	}
	var ks []key
	for _, k := range keys {
		ks = append(ks, key{"qcode", k})
	}
	return q.Run(ctx, "send-key", map[string]any{"keys": ks}, nil)
}

// MonitorCommand runs a human monitor command (the NixOS driver's
// send_monitor_command) and returns its output.
func (q *QMP) MonitorCommand(ctx context.Context, cmd string) (string, error) {
	var out string
	err := q.Run(ctx, "human-monitor-command", map[string]any{"command-line": cmd}, &out)
	return out, err
}

// StatusInfo is the reply of query-status.
type StatusInfo struct {
	Running bool   `json:"running"`
	Status  string `json:"status"`
}

// Status returns whether the guest runs and QEMU's run state.
func (q *QMP) Status(ctx context.Context) (StatusInfo, error) {
	var s StatusInfo
	err := q.Run(ctx, "query-status", nil, &s)
	return s, err
}

// Pause stops the guest's CPUs (QMP stop).
func (q *QMP) Pause(ctx context.Context) error { return q.Run(ctx, "stop", nil, nil) }

// Resume continues the guest's CPUs (QMP cont).
func (q *QMP) Resume(ctx context.Context) error { return q.Run(ctx, "cont", nil, nil) }

// Reset resets the machine (QMP system_reset).
func (q *QMP) Reset(ctx context.Context) error { return q.Run(ctx, "system_reset", nil, nil) }

// Powerdown sends an ACPI power button press.
func (q *QMP) Powerdown(ctx context.Context) error { return q.Run(ctx, "system_powerdown", nil, nil) }

// Quit ends QEMU. The closed socket that follows counts as success.
func (q *QMP) Quit(ctx context.Context) error {
	err := q.Run(ctx, "quit", nil, nil)
	if err != nil && (strings.Contains(err.Error(), "unexpected end of JSON input") || errors.Is(err, errClosed)) {
		return nil
	}
	return err
}

var errClosed = errors.New("use of closed network connection")

// EjectMedia opens the tray of the removable drive with device id and
// removes its medium (blockdev-open-tray + blockdev-remove-medium).
func (q *QMP) EjectMedia(ctx context.Context, id string) error {
	if err := q.Run(ctx, "blockdev-open-tray", map[string]any{"id": id, "force": true}, nil); err != nil {
		return err
	}
	return q.Run(ctx, "blockdev-remove-medium", map[string]any{"id": id}, nil)
}

// SetLink sets the link state of the NIC with device id.
func (q *QMP) SetLink(ctx context.Context, id string, up bool) error {
	return q.Run(ctx, "set_link", map[string]any{"name": id, "up": up}, nil)
}

// SetAction changes QEMU's reaction to guest reboot, shutdown and panic
// (empty fields are left as they are).
func (q *QMP) SetAction(ctx context.Context, a Actions) error {
	args := map[string]any{}
	if a.Reboot != "" {
		args["reboot"] = a.Reboot
	}
	if a.Shutdown != "" {
		args["shutdown"] = a.Shutdown
	}
	if a.Panic != "" {
		args["panic"] = a.Panic
	}
	return q.Run(ctx, "set-action", args, nil)
}

func (q *QMP) close() { q.mon.Disconnect() }
