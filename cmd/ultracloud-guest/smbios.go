package main

import (
	"os"
	"strings"
)

// enrolSecretKey names the enrolment secret in SMBIOS OEM strings and on
// the kernel command line.
const enrolSecretKey = "ultracloud.enrol-secret="

// enrolSecret is the one-time enrolment secret the harness handed this
// machine.
func enrolSecret() string { return credential(enrolSecretKey) }

// credential is a value the harness handed this machine under key (which
// ends in "="): an SMBIOS OEM string (QEMU -smbios type=11), else the
// kernel command line. OEM strings keep secrets off /proc/cmdline.
func credential(key string) string {
	if table, err := os.ReadFile("/sys/firmware/dmi/tables/DMI"); err == nil {
		for _, s := range oemStrings(table) {
			if v, ok := strings.CutPrefix(s, key); ok {
				return v
			}
		}
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(f, key); ok {
			return v
		}
	}
	return ""
}

// oemStrings returns the strings of every SMBIOS type 11 (OEM strings)
// structure of a raw DMI table, bounds-checked.
func oemStrings(table []byte) []string {
	var out []string
	for pos := 0; pos+4 <= len(table); {
		typ, length := table[pos], int(table[pos+1])
		if length < 4 || pos+length > len(table) {
			return out
		}
		// The string set follows the formatted area and ends with two NULs.
		end := pos + length
		strs := []string{}
		start := end
		for end+1 < len(table) && !(table[end] == 0 && table[end+1] == 0) {
			if table[end] == 0 {
				strs = append(strs, string(table[start:end]))
				start = end + 1
			}
			end++
		}
		if end > start {
			strs = append(strs, string(table[start:end]))
		}
		if typ == 11 {
			out = append(out, strs...)
		}
		if typ == 127 { // end of table
			return out
		}
		pos = end + 2
	}
	return out
}
