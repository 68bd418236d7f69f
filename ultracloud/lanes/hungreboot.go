package lanes

import (
	"context"
	"fmt"
	"time"

	"github.com/photoncloud/testkit/ultracloud/vm"
)

// hungReboot is how long a guest that said it reboots may take before
// its reset comes (a reboot takes well under a second; the bound is
// Scaled).
const hungReboot = 30 * time.Second

// rebootOrReset waits for the reset that follows a guest's "rebooting"
// (wait returns once it came). A guest whose kernel hangs on the way (seen
// under TCG: a soft lockup in ksoftirqd after the installer's reboot(2))
// is reset through QMP after Scaled(hungReboot), as a BMC power cycle
// would, and the report records it as a "reboot-hung" event with the
// console's tail. stop pauses the machine first (for a caller that needs
// it paused on its reset, as the ISO eject does).
func rebootOrReset(ctx context.Context, r *Run, node string, m *vm.Machine, stop bool, wait func(context.Context) error) error {
	grace := r.Scaled(hungReboot)
	gctx, cancel := context.WithTimeout(ctx, grace)
	err := wait(gctx)
	cancel()
	if err == nil || gctx.Err() == nil || ctx.Err() != nil {
		return err
	}
	r.Event(node, "reboot-hung", fmt.Sprintf("no reset %s after the guest said it reboots; reset through QMP%s", grace, m.Describe()))
	if stop {
		return m.QMP().Pause(ctx)
	}
	if err := m.QMP().Reset(ctx); err != nil {
		return fmt.Errorf("reset a hung reboot: %w", err)
	}
	return wait(ctx)
}
