package bootstrap

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"strings"
)

// LoaderEntry is a Boot Loader Specification type #1 entry, the file
// systemd-boot reads from loader/entries/ on the ESP: what a direct-kernel
// boot of an installed system needs (kernel, initrds, options).
type LoaderEntry struct {
	Title string
	// Linux is the kernel's path on the ESP (absolute, cleaned).
	Linux string
	// Initrd are the initrds' paths, in order (the kernel unpacks them
	// as one concatenated archive).
	Initrd []string
	// Options is the kernel command line (every options line, joined).
	Options string
}

// maxLoaderEntry bounds an entry (a real one is a few hundred bytes).
const maxLoaderEntry = 64 << 10

// ParseLoaderEntry parses an entry: "key value" lines, # comments, unknown
// keys ignored (as the specification says). It needs a linux line; paths
// must stay on the ESP (absolute, no "..").
func ParseLoaderEntry(data []byte) (LoaderEntry, error) {
	var e LoaderEntry
	if len(data) > maxLoaderEntry {
		return e, fmt.Errorf("loader entry: %d bytes, more than %d", len(data), maxLoaderEntry)
	}
	var opts, problems []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxLoaderEntry)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, value, _ := strings.Cut(strings.ReplaceAll(text, "\t", " "), " ")
		value = strings.TrimSpace(value)
		espPath := func() (string, bool) {
			if !strings.HasPrefix(value, "/") || strings.Contains(value, "..") || strings.ContainsRune(value, 0) {
				problems = append(problems, fmt.Sprintf("line %d: %s %q is not an absolute path on the ESP (write e.g. /ultracloud/vmlinuz)", line, key, value))
				return "", false
			}
			return path.Clean(value), true
		}
		switch key {
		case "title":
			e.Title = value
		case "linux":
			if e.Linux != "" {
				problems = append(problems, fmt.Sprintf("line %d: a second linux line (one kernel per entry)", line))
			} else if p, ok := espPath(); ok {
				e.Linux = p
			}
		case "initrd":
			if p, ok := espPath(); ok {
				e.Initrd = append(e.Initrd, p)
			}
		case "options":
			if value != "" {
				opts = append(opts, value)
			}
		}
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, err.Error())
	}
	if e.Linux == "" && len(problems) == 0 {
		problems = append(problems, "no linux line: an entry names its kernel (linux /ultracloud/vmlinuz)")
	}
	if len(problems) > 0 {
		return LoaderEntry{}, fmt.Errorf("loader entry: %s", strings.Join(problems, "; "))
	}
	e.Options = strings.Join(opts, " ")
	return e, nil
}
