package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// dirStore keeps one file per entry, <id>.json, in a directory (--data):
// on a VM that is a volume mounted into it, so the entries move with the
// volume from VM to VM. Each entry is written aside, synced and renamed,
// and the directory synced: an acknowledged entry is on the volume.
type dirStore struct{ dir string }

func (d *dirStore) put(_ context.Context, e Entry) error {
	data, _ := json.Marshal(e)
	f, err := os.CreateTemp(d.dir, ".entry-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(d.dir, e.ID+".json"))
	}
	if err != nil {
		return fmt.Errorf("entry %s in %s: %w", e.ID, d.dir, err)
	}
	if dir, err := os.Open(d.dir); err == nil {
		err = dir.Sync()
		dir.Close()
		if err != nil {
			return fmt.Errorf("sync %s: %w", d.dir, err)
		}
	}
	return nil
}

func (d *dirStore) list(context.Context) ([]Entry, error) {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	out := make([]Entry, 0, len(names))
	for _, n := range names {
		raw, err := os.ReadFile(filepath.Join(d.dir, n))
		if err != nil {
			return nil, err
		}
		var e Entry
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("entry %s: %w", n, err)
		}
		out = append(out, e)
	}
	return out, nil
}
