package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/photoncloud/testkit/internal/s3client"
	"github.com/photoncloud/testkit/ultracloud/storagebench"
)

// storageBenchMain is `/init storage-bench --file F [--size MiB] [--ops N]
// [--rounds N]`: the guest agent's disk measurement (package storagebench,
// O_DIRECT; the median of the rounds), as JSON on stdout.
func storageBenchMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("storage-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "/var/lib/ultracloud-bench.dat", "file (or block device) to measure, on the disk under test")
	size := fs.Int64("size", 32, "region in MiB")
	ops := fs.Int("ops", 1000, "operations of each random pattern")
	rounds := fs.Int("rounds", 3, "rounds of every pattern, interleaved; the result is their median")
	keep := fs.Bool("keep", false, "keep the file afterwards")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rs, err := storagebench.RunRounds(context.Background(), *file, storagebench.Patterns(*size<<20, *ops), *rounds)
	if !*keep {
		if st, serr := os.Stat(*file); serr == nil && st.Mode().IsRegular() {
			os.Remove(*file)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "storage-bench:", err)
		return 1
	}
	json.NewEncoder(stdout).Encode(rs)
	return 0
}

// objectBenchMain is `/init object-bench --endpoint URL --bucket B
// (--put|--get) [--objects N] [--size BYTES]`: S3 PUT or GET throughput
// of N objects (unsigned, path style), as JSON {"MBps": …, "seconds": …,
// "retries": …}.
func objectBenchMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("object-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", "", "S3 endpoint, e.g. http://10.100.0.1:7480")
	bucket := fs.String("bucket", "bench", "bucket (created by --put)")
	put := fs.Bool("put", false, "put the objects")
	get := fs.Bool("get", false, "get the objects (put earlier)")
	objects := fs.Int("objects", 16, "objects")
	size := fs.Int("size", 256<<10, "bytes per object")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *endpoint == "" || *put == *get {
		fmt.Fprintln(stderr, "object-bench: want --endpoint and one of --put, --get")
		return 2
	}
	// A 5xx or a failed connection is retried as an S3 SDK does (4
	// attempts, waits of 1, 2 and 4 s); the output counts the retries, and
	// their waits are in the figures.
	c := &s3client.Client{Endpoint: *endpoint, Bucket: *bucket}
	do := func(method, path string, body []byte) ([]byte, error) {
		code, data, err := c.Do(context.Background(), method, path, nil, body)
		if err != nil {
			return nil, err
		}
		if code != http.StatusOK && !(method == http.MethodPut && path == "" && bytes.Contains(data, []byte("BucketAlready"))) {
			return nil, fmt.Errorf("%s /%s%s: %d %s (after %d retries in all)", method, *bucket, path, code, bytes.TrimSpace(data), c.Retries())
		}
		return data, nil
	}
	if *put {
		if _, err := do(http.MethodPut, "", nil); err != nil {
			fmt.Fprintln(stderr, "object-bench:", err)
			return 1
		}
	}
	payload := bytes.Repeat([]byte("ultracloud"), *size/10+1)[:*size]
	start := time.Now()
	var moved int64
	for i := 0; i < *objects; i++ {
		key := fmt.Sprintf("/obj-%04d", i)
		if *put {
			if _, err := do(http.MethodPut, key, payload); err != nil {
				fmt.Fprintln(stderr, "object-bench:", err)
				return 1
			}
			moved += int64(len(payload))
			continue
		}
		data, err := do(http.MethodGet, key, nil)
		if err != nil {
			fmt.Fprintln(stderr, "object-bench:", err)
			return 1
		}
		if !bytes.Equal(data, payload) {
			fmt.Fprintf(stderr, "object-bench: %s: %d bytes differ from what was put\n", key, len(data))
			return 1
		}
		moved += int64(len(data))
	}
	secs := time.Since(start).Seconds()
	json.NewEncoder(stdout).Encode(map[string]float64{"MBps": float64(moved) / (1 << 20) / secs, "seconds": secs, "retries": float64(c.Retries())})
	return 0
}
