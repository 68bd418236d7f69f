// Package storagebench measures storage the way fio does with the psync
// engine at queue depth 1 and O_DIRECT: sequential read and write
// bandwidth, 4 KiB random read and write IOPS, and the latency of a
// 4 KiB write followed by fdatasync (p50, p99). The guest agent runs it
// inside fixture nodes (`/init storage-bench`); a test runs it on the
// host against a file next to fio with the same patterns, and the two
// must agree. Compare checks results against a baseline.
package storagebench

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kinds of Pattern.
const (
	SeqWrite  = "write"
	SeqRead   = "read"
	RandRead  = "randread"
	RandWrite = "randwrite"
	Fsync     = "fsync"
)

// Pattern is one measurement.
type Pattern struct {
	// Name names the metric ("seq-write", …).
	Name string `json:"name"`
	// Kind is SeqWrite, SeqRead, RandRead, RandWrite or Fsync.
	Kind string `json:"kind"`
	// BlockSize is the size of each I/O.
	BlockSize int `json:"blockSize"`
	// Size is the file region the pattern covers.
	Size int64 `json:"size"`
	// Ops bounds random and fsync patterns (sequential ones do Size).
	Ops int `json:"ops,omitempty"`
}

// Result is one pattern's measurement.
type Result struct {
	Name    string  `json:"name"`
	Kind    string  `json:"kind"`
	Ops     int     `json:"ops"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	MBps    float64 `json:"MBps"`
	IOPS    float64 `json:"iops"`
	// P50ms and P99ms are per-operation latencies (fsync patterns: the
	// write and its fdatasync).
	P50ms float64 `json:"p50ms"`
	P99ms float64 `json:"p99ms"`
	// Rounds is how many times the pattern ran (RunRounds); MBps, IOPS,
	// P50ms and P99ms are then each the median over the rounds, and Ops,
	// Bytes and Seconds their sums.
	Rounds int `json:"rounds,omitempty"`
}

// Patterns returns the default set over a region of size bytes (at least
// 4 MiB): sequential write and read in 1 MiB blocks, 4 KiB random read
// and write (ops each), 4 KiB write + fdatasync (ops/4).
func Patterns(size int64, ops int) []Pattern {
	size = max(size, 4<<20) / (1 << 20) * (1 << 20)
	ops = cmp.Or(ops, 2000)
	return []Pattern{
		{Name: "seq-write", Kind: SeqWrite, BlockSize: 1 << 20, Size: size},
		{Name: "seq-read", Kind: SeqRead, BlockSize: 1 << 20, Size: size},
		{Name: "rand-read-4k", Kind: RandRead, BlockSize: 4096, Size: size, Ops: ops},
		{Name: "rand-write-4k", Kind: RandWrite, BlockSize: 4096, Size: size, Ops: ops},
		{Name: "fsync-4k", Kind: Fsync, BlockSize: 4096, Size: size, Ops: max(ops/4, 50)},
	}
}

// ErrBadPattern: a pattern that cannot run.
var ErrBadPattern = errors.New("bad pattern")

// Run measures each pattern on path (a file, created and sized as needed,
// or a block device), with O_DIRECT.
func Run(ctx context.Context, path string, ps []Pattern) ([]Result, error) {
	var out []Result
	for _, p := range ps {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		r, err := runOne(path, p)
		if err != nil {
			return out, fmt.Errorf("%s: %w", p.Name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// RunRounds measures the patterns rounds times, interleaved (every
// pattern once per round, in order), and reports each pattern's median
// figures: one round caught by a burst of load elsewhere on the host (a
// neighbour VM, another test) does not become the result, as it would
// with a single pass.
func RunRounds(ctx context.Context, path string, ps []Pattern, rounds int) ([]Result, error) {
	rounds = max(rounds, 1)
	all := make([][]Result, len(ps))
	for range rounds {
		rs, err := Run(ctx, path, ps)
		if err != nil {
			return nil, err
		}
		for i, r := range rs {
			all[i] = append(all[i], r)
		}
	}
	out := make([]Result, len(ps))
	for i, rs := range all {
		out[i] = Median(rs)
	}
	return out, nil
}

// Median folds results of one pattern into one: the median of each
// figure, the sums of Ops, Bytes and Seconds, Rounds the number folded.
func Median(rs []Result) Result {
	if len(rs) == 0 {
		return Result{}
	}
	m := Result{Name: rs[0].Name, Kind: rs[0].Kind, Rounds: len(rs)}
	med := func(f func(Result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return MedianOf(v)
	}
	for _, r := range rs {
		m.Ops += r.Ops
		m.Bytes += r.Bytes
		m.Seconds += r.Seconds
	}
	m.MBps = med(func(r Result) float64 { return r.MBps })
	m.IOPS = med(func(r Result) float64 { return r.IOPS })
	m.P50ms = med(func(r Result) float64 { return r.P50ms })
	m.P99ms = med(func(r Result) float64 { return r.P99ms })
	return m
}

// MedianOf is the median of v (the mean of the middle two for an even
// count; 0 for none). v is not changed.
func MedianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Sorted(slices.Values(v))
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func runOne(path string, p Pattern) (Result, error) {
	if p.BlockSize <= 0 || p.BlockSize%4096 != 0 || p.Size < int64(p.BlockSize) {
		return Result{}, fmt.Errorf("%w: block size %d (a multiple of 4096) over %d bytes", ErrBadPattern, p.BlockSize, p.Size)
	}
	flags := unix.O_RDWR | unix.O_CREAT | unix.O_DIRECT
	fd, err := unix.Open(path, flags, 0o644)
	if err != nil {
		return Result{}, fmt.Errorf("open %s with O_DIRECT: %w", path, err)
	}
	defer unix.Close(fd)
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() && st.Size() < p.Size {
		if err := prefill(fd, p.Size); err != nil {
			return Result{}, err
		}
	}
	buf, err := unix.Mmap(-1, 0, p.BlockSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return Result{}, err
	}
	defer unix.Munmap(buf)
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	blocks := p.Size / int64(p.BlockSize)
	rng := rand.New(rand.NewPCG(1, uint64(p.BlockSize)))
	var lat []time.Duration
	var bytes int64
	start := time.Now()
	switch p.Kind {
	case SeqWrite, SeqRead:
		for b := int64(0); b < blocks; b++ {
			binary.LittleEndian.PutUint64(buf, rng.Uint64())
			t := time.Now()
			if err := doIO(fd, p.Kind == SeqWrite, buf, b*int64(p.BlockSize)); err != nil {
				return Result{}, err
			}
			lat = append(lat, time.Since(t))
			bytes += int64(p.BlockSize)
		}
	case RandRead, RandWrite, Fsync:
		n := cmp.Or(p.Ops, 1000)
		for i := 0; i < n; i++ {
			off := rng.Int64N(blocks) * int64(p.BlockSize)
			if p.Kind == Fsync {
				off = int64(i) % blocks * int64(p.BlockSize)
			}
			// A new first word per write, as fio scrambles its buffers:
			// storage that skips rewriting identical data must not look
			// faster than it is.
			binary.LittleEndian.PutUint64(buf, rng.Uint64())
			t := time.Now()
			if err := doIO(fd, p.Kind != RandRead, buf, off); err != nil {
				return Result{}, err
			}
			if p.Kind == Fsync {
				if _, _, errno := unix.RawSyscall(unix.SYS_FDATASYNC, uintptr(fd), 0, 0); errno != 0 {
					return Result{}, errno
				}
			}
			lat = append(lat, time.Since(t))
			bytes += int64(p.BlockSize)
		}
	default:
		return Result{}, fmt.Errorf("%w: kind %q (want write, read, randread, randwrite or fsync)", ErrBadPattern, p.Kind)
	}
	if p.Kind == SeqWrite {
		// fio's end_fsync: the data is on the device when the clock stops.
		if err := unix.Fdatasync(fd); err != nil {
			return Result{}, err
		}
	}
	secs := time.Since(start).Seconds()
	slices.Sort(lat)
	return Result{Name: p.Name, Kind: p.Kind, Ops: len(lat), Bytes: bytes, Seconds: secs,
		MBps: float64(bytes) / (1 << 20) / secs, IOPS: float64(len(lat)) / secs,
		P50ms: ms(pct(lat, 50)), P99ms: ms(pct(lat, 99))}, nil
}

// doIO is one pread or pwrite as a raw system call: without the
// runtime's syscall bookkeeping (which hands the P to another thread
// when a call blocks past 20 µs), the measured latency is the kernel's
// and the device's, as fio's C loop sees it.
func doIO(fd int, write bool, buf []byte, off int64) error {
	nr := uintptr(unix.SYS_PREAD64)
	if write {
		nr = unix.SYS_PWRITE64
	}
	r, _, errno := unix.RawSyscall6(nr, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(off), 0, 0)
	if errno != 0 {
		return errno
	}
	n := int(r)
	if n != len(buf) {
		return fmt.Errorf("short I/O at %d: %d of %d bytes", off, n, len(buf))
	}
	return nil
}

// prefill writes the region once so reads hit allocated blocks (as fio
// lays out its file before reading).
func prefill(fd int, size int64) error {
	buf, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return err
	}
	defer unix.Munmap(buf)
	for off := int64(0); off < size; off += 1 << 20 {
		if err := doIO(fd, true, buf[:min(int64(len(buf)), size-off)], off); err != nil {
			return err
		}
	}
	return unix.Fdatasync(fd)
}

func pct(l []time.Duration, p int) time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l[min(len(l)-1, (len(l)*p+99)/100-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
