package main

import (
	"errors"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// loadModules loads each module listed (absolute paths, dependency order)
// with finit_module. Already-loaded modules count as loaded; a module that
// fails (e.g. ENODEV for hardware that is absent) is logged, not fatal.
func (g *guest) loadModules(orderFile string) (loaded, failed int) {
	data, err := os.ReadFile(orderFile)
	if err != nil {
		g.logf("no module list %s: %v", orderFile, err)
		return 0, 0
	}
	for _, path := range strings.Fields(string(data)) {
		f, err := os.Open(path)
		if err != nil {
			g.logf("module %s: %v", path, err)
			failed++
			continue
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if errors.Is(err, unix.ENODEV) {
			// No such hardware here (e.g. efivarfs without UEFI): not a failure.
			continue
		}
		if err != nil && !errors.Is(err, unix.EEXIST) {
			g.logf("module %s: %v", path, err)
			failed++
			continue
		}
		loaded++
	}
	return loaded, failed
}
