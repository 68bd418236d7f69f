package doubles

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// lease is a chainfire lease a double keeps for as long as it runs: when
// the lease is lost (the node paused past its TTL, cut off by a
// partition, chainfire restarted), a new one is granted and renewed puts
// again what lives under it.
type lease struct {
	mu sync.Mutex
	id clientv3.LeaseID
}

// ID is the current lease.
func (l *lease) ID() clientv3.LeaseID {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.id
}

// keep grants the first lease (waiting as long as ctx allows: chainfire
// may still be electing at boot; an error if it cannot) and calls renewed
// with it, then keeps it alive until ctx ends, replacing it when lost.
// l.ID is the new lease when renewed runs.
func (l *lease) keep(ctx context.Context, cli *clientv3.Client, ttl time.Duration, name string, log *slog.Logger, renewed func(context.Context, clientv3.LeaseID) error) error {
	grant := func(gctx context.Context) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
		g, err := cli.Grant(gctx, int64(ttl/time.Second))
		if err != nil {
			return nil, fmt.Errorf("%s: lease: %w", name, err)
		}
		ka, err := cli.KeepAlive(ctx, g.ID)
		if err != nil {
			return nil, fmt.Errorf("%s: keepalive: %w", name, err)
		}
		l.mu.Lock()
		l.id = g.ID
		l.mu.Unlock()
		if err := renewed(ctx, g.ID); err != nil {
			return ka, fmt.Errorf("%s: under the new lease: %w", name, err)
		}
		return ka, nil
	}
	ka, err := grant(ctx)
	if err != nil {
		return err
	}
	go func() {
		for {
			for range ka {
			}
			if ctx.Err() != nil {
				return
			}
			log.Warn(name + ": lease lost; granting a new one")
			for {
				gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				var err error
				ka, err = grant(gctx)
				cancel()
				if err == nil {
					log.Info(name + ": registered again under a new lease")
					break
				}
				log.Warn(name+": cannot renew yet", "err", err)
				if ka != nil {
					// Granted but not registered: drop it and try again.
					go func(ka <-chan *clientv3.LeaseKeepAliveResponse) {
						for range ka {
						}
					}(ka)
				}
				sleep(ctx, time.Second)
				if ctx.Err() != nil {
					return
				}
			}
		}
	}()
	return nil
}
