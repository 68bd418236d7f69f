package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

// procs starts child processes and is the only caller of wait4: as PID 1 it
// also reaps every orphan. exec.Cmd.Wait must not be used in the guest.
type procs struct {
	mu      sync.Mutex
	waiting map[int]chan syscall.WaitStatus
}

func newProcs() *procs {
	p := &procs{waiting: map[int]chan syscall.WaitStatus{}}
	sig := make(chan os.Signal, 16)
	signal.Notify(sig, syscall.SIGCHLD)
	go p.loop(sig)
	return p
}

func (p *procs) loop(sig chan os.Signal) {
	for {
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			p.mu.Lock()
			if ch, ok := p.waiting[pid]; ok {
				ch <- ws
				delete(p.waiting, pid)
			}
			p.mu.Unlock()
		}
		<-sig
	}
}

// start runs argv with the given stdio and returns its pid and a channel that
// receives its exit status. The lock is held across fork and registration, so
// a child that exits at once is still delivered.
func (p *procs) start(argv, env []string, files []*os.File, setsid bool) (int, <-chan syscall.WaitStatus, error) {
	return p.startAttr(argv, env, files, "", &syscall.SysProcAttr{Setsid: setsid})
}

// startAttr is start with a working directory and process attributes (a
// controlling terminal for SSH sessions).
func (p *procs) startAttr(argv, env []string, files []*os.File, dir string, sys *syscall.SysProcAttr) (int, <-chan syscall.WaitStatus, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	proc, err := os.StartProcess(argv[0], argv, &os.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: files,
		Sys:   sys,
	})
	if err != nil {
		return 0, nil, err
	}
	pid := proc.Pid // Release sets Pid to -1
	ch := make(chan syscall.WaitStatus, 1)
	p.waiting[pid] = ch
	proc.Release()
	return pid, ch, nil
}

// run runs argv to completion and returns its combined output.
func (p *procs) run(argv ...string) (string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	_, ch, err := p.start(argv, baseEnv(), []*os.File{devnull, w, w}, false)
	w.Close()
	if err != nil {
		r.Close()
		return "", err
	}
	var out bytes.Buffer
	io.Copy(&out, r)
	r.Close()
	ws := <-ch
	if !ws.Exited() || ws.ExitStatus() != 0 {
		return out.String(), fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), describe(ws), strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

func describe(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}

func baseEnv() []string {
	return []string{"PATH=/bin:/sbin:/usr/bin", "HOME=/root", "TERM=dumb", "LANG=C"}
}
