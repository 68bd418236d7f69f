package main

import (
	"slices"
	"testing"
)

// A DMI table as QEMU lays it out: a type 1 structure with strings, a type
// 11 with two OEM strings, the end marker.
func TestOEMStrings(t *testing.T) {
	var table []byte
	table = append(table, 1, 8, 0, 0, 1, 2, 0, 0)
	table = append(table, "QEMU\x00Standard PC\x00\x00"...)
	table = append(table, 11, 5, 1, 0, 2)
	table = append(table, "ultracloud.enrol-secret=abc,def\x00other\x00\x00"...)
	table = append(table, 127, 4, 2, 0, 0, 0)
	if got := oemStrings(table); !slices.Equal(got, []string{"ultracloud.enrol-secret=abc,def", "other"}) {
		t.Fatalf("%q", got)
	}
	for _, bad := range [][]byte{nil, {11}, {11, 200, 0, 0}, {11, 5, 0, 0, 1, 'x'}} {
		oemStrings(bad) // bounded, no panic
	}
}

func FuzzOEMStrings(f *testing.F) {
	f.Add([]byte{11, 5, 1, 0, 1, 'a', 0, 0, 127, 4, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, table []byte) { oemStrings(table) })
}
