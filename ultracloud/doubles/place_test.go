package doubles

import (
	"reflect"
	"testing"
)

func TestPlace(t *testing.T) {
	web3 := map[string]ServiceSpec{"web": {Replicas: 3}}
	for _, tc := range []struct {
		name     string
		services map[string]ServiceSpec
		live     []string
		current  map[string]string
		assign   map[string]string
		remove   []string
		moved    map[string]string
	}{
		{"spread on empty", web3, []string{"node06", "node04", "node05"}, nil,
			map[string]string{"web/0": "node04", "web/1": "node05", "web/2": "node06"}, nil, map[string]string{}},
		{"stable when all live", web3, []string{"node04", "node05", "node06"},
			map[string]string{"web/0": "node06", "web/1": "node04", "web/2": "node05"}, map[string]string{}, nil, map[string]string{}},
		{"dead node's instance moves to the least loaded", web3, []string{"node04", "node06"},
			map[string]string{"web/0": "node04", "web/1": "node05", "web/2": "node06"},
			map[string]string{"web/1": "node04"}, nil, map[string]string{"web/1": "node05"}},
		{"scale down removes the tail", map[string]ServiceSpec{"web": {Replicas: 1}}, []string{"node04", "node05"},
			map[string]string{"web/0": "node04", "web/1": "node05", "web/2": "node05"}, map[string]string{}, []string{"web/1", "web/2"}, map[string]string{}},
		{"gone service and junk ids removed", nil, []string{"node04"},
			map[string]string{"old/0": "node04", "junk": "node04"}, map[string]string{}, []string{"junk", "old/0"}, map[string]string{}},
		{"no live node assigns nothing", web3, nil, map[string]string{"web/0": "node04"}, map[string]string{}, nil, map[string]string{}},
		{"more replicas than nodes stay balanced", map[string]ServiceSpec{"web": {Replicas: 4}}, []string{"node04", "node05"}, nil,
			map[string]string{"web/0": "node04", "web/1": "node05", "web/2": "node04", "web/3": "node05"}, nil, map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Place(tc.services, tc.live, tc.current)
			if !reflect.DeepEqual(p.Assign, tc.assign) {
				t.Errorf("assign = %v, want %v", p.Assign, tc.assign)
			}
			if !reflect.DeepEqual(p.Remove, tc.remove) {
				t.Errorf("remove = %v, want %v", p.Remove, tc.remove)
			}
			if !reflect.DeepEqual(p.Moved, tc.moved) {
				t.Errorf("moved = %v, want %v", p.Moved, tc.moved)
			}
		})
	}
}

func FuzzParseInstanceID(f *testing.F) {
	for _, s := range []string{"web/0", "web/", "/1", "a/b/c", "web/-1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		svc, idx, err := ParseInstanceID(s)
		if err == nil && InstanceID(svc, idx) != s && "0"+s[len(svc)+1:] != s {
			if _, _, err2 := ParseInstanceID(InstanceID(svc, idx)); err2 != nil {
				t.Fatalf("%q parsed to %q %d that does not round-trip", s, svc, idx)
			}
		}
	})
}
