package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// A fault that names no kind, or lacks what its kind needs, is refused
// with ErrBadFault naming what is missing, before anything is touched.
func TestInjectRejectsBadFaults(t *testing.T) {
	for _, tc := range []struct {
		f    Fault
		want string
	}{
		{Fault{}, "known: kill"},
		{Fault{Kind: "meteor"}, `"meteor"`},
		{Fault{Kind: FaultKill}, "kill needs a node"},
		{Fault{Kind: FaultPartition}, "groups"},
		{Fault{Kind: FaultLinkDown, Node: "node01"}, "network"},
		{Fault{Kind: FaultDiskErrors, Node: "node01"}, "disk"},
	} {
		err := (&Cluster{}).Inject(context.Background(), tc.f)
		if !errors.Is(err, ErrBadFault) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrBadFault mentioning %q", tc.f, err, tc.want)
		}
	}
}
