package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// users writes /etc/passwd, /etc/group and /etc/shadow: root, nobody and
// the login users of ultracloud.users= (uid and gid 1000 on, home under
// /home, bash), so `su -l USER -c CMD` works as NixOS tests use it.
func (g *guest) users() error {
	passwd := []string{"root:x:0:0:System administrator:/root:/bin/bash", "nobody:x:65534:65534:Unprivileged account:/var/empty:/bin/false"}
	group := []string{"root:x:0:", "wheel:x:1:", "users:x:100:", "nogroup:x:65534:"}
	shadow := []string{"root:!:1::::::", "nobody:!:1::::::"}
	if err := os.MkdirAll("/home", 0o755); err != nil {
		return err
	}
	for i, u := range g.list("ultracloud.users") {
		uid := 1000 + i
		home := filepath.Join("/home", u)
		passwd = append(passwd, fmt.Sprintf("%s:x:%d:%d::%s:/bin/bash", u, uid, uid, home))
		group = append(group, fmt.Sprintf("%s:x:%d:", u, uid))
		shadow = append(shadow, u+":!:1::::::")
		if err := os.MkdirAll(home, 0o700); err != nil {
			return err
		}
		if err := os.Chown(home, uid, uid); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name  string
		lines []string
		mode  os.FileMode
	}{{"/etc/passwd", passwd, 0o644}, {"/etc/group", group, 0o644}, {"/etc/shadow", shadow, 0o600}} {
		if err := os.WriteFile(f.name, []byte(strings.Join(f.lines, "\n")+"\n"), f.mode); err != nil {
			return err
		}
	}
	return os.MkdirAll("/var/empty", 0o555)
}
