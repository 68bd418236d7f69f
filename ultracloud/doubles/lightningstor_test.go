package doubles

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// s3Client is the AWS SDK's S3 client pointed at a lightningstor instance
// (path style; the double accepts any credentials).
func s3Client(addr string) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String("http://" + addr), UsePathStyle: true, Region: "us-east-1",
		Credentials:                credentials.NewStaticCredentialsProvider("ultracloud", "fixture", ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// lightningstor speaks S3 (the AWS SDK as client) with its state in
// chainfire: an object written through one instance is read, listed and
// ranged through another, survives a restart of chainfire from its disk,
// and what S3 refuses is refused.
func TestLightningstor(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	members := []Member{{"node01", "127.0.0.21"}}
	client, peer := freePort(t, "127.0.0.21"), freePort(t, "127.0.0.21")
	dir := t.TempDir()
	startChainfire := func() *proc {
		return spawn(t, func(ctx context.Context) error {
			return RunChainfire(ctx, ChainfireConfig{Name: "node01", Members: members, DataDir: dir, ClientHost: "127.0.0.21",
				ClientPort: client, PeerPort: peer, HeartbeatMs: 100, ElectionMs: 1000, LogOutput: "/dev/null"}, log)
		})
	}
	cf := startChainfire()
	cli, err := Connect(Endpoints(members, client), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")) }
	ls1, ls2 := addr(), addr()
	for _, a := range []string{ls1, ls2} {
		spawn(t, func(ctx context.Context) error { return RunLightningstor(ctx, a, cli, log) })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c1, c2 := s3Client(ls1), s3Client(ls2)
	waitFor(t, "lightningstor", 60*time.Second, func() error {
		_, err := c1.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("guestbook")})
		return err
	})
	if _, err := c2.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("guestbook")}); apiCode(err) != "BucketAlreadyExists" {
		t.Fatalf("second create: %v", err)
	}
	put := func(c *s3.Client, key, body string) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("guestbook"), Key: aws.String(key), Body: strings.NewReader(body)})
		return err
	}
	get := func(c *s3.Client, key string, rng string) (string, error) {
		in := &s3.GetObjectInput{Bucket: aws.String("guestbook"), Key: aws.String(key)}
		if rng != "" {
			in.Range = aws.String(rng)
		}
		out, err := c.GetObject(ctx, in)
		if err != nil {
			return "", err
		}
		defer out.Body.Close()
		b, err := io.ReadAll(out.Body)
		return string(b), err
	}
	for key, body := range map[string]string{"entries/001": "hello from node02", "entries/002": "second entry", "meta": "{}"} {
		if err := put(c1, key, body); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	if got, err := get(c2, "entries/001", ""); err != nil || got != "hello from node02" {
		t.Fatalf("get through the other instance: %q %v", got, err)
	}
	if got, err := get(c2, "entries/002", "bytes=0-5"); err != nil || got != "second" {
		t.Fatalf("range get: %q %v", got, err)
	}
	list, err := c2.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("guestbook"), Prefix: aws.String("entries/")})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range list.Contents {
		keys = append(keys, *o.Key)
	}
	if !slices.Equal(keys, []string{"entries/001", "entries/002"}) {
		t.Fatalf("list entries/: %v", keys)
	}
	dl, err := c2.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("guestbook"), Delimiter: aws.String("/")})
	if err != nil || len(dl.CommonPrefixes) != 1 || *dl.CommonPrefixes[0].Prefix != "entries/" || len(dl.Contents) != 1 {
		t.Fatalf("list with delimiter: %+v %v", dl, err)
	}
	if _, err := get(c1, "nope", ""); apiCode(err) != "NoSuchKey" {
		t.Fatalf("missing key: %v", err)
	}
	if err := put(c1, "big", strings.Repeat("x", MaxObjectBytes+1)); apiCode(err) != "EntityTooLarge" {
		t.Fatalf("too large: %v", err)
	}
	if _, err := c1.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("guestbook")}); apiCode(err) != "BucketNotEmpty" {
		t.Fatalf("delete a bucket with objects: %v", err)
	}
	if _, err := c1.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("guestbook"), Key: aws.String("meta")}); err != nil {
		t.Fatal(err)
	}
	if _, err := get(c2, "meta", ""); apiCode(err) != "NoSuchKey" {
		t.Fatalf("deleted key still read: %v", err)
	}

	// Durable: chainfire stops and starts again from its disk. While it
	// is away, a request fails with S3's InternalError naming chainfire
	// (the cause, not gofakes3's bare "Internal Error").
	cf.stop(t)
	resp, err := http.Get("http://" + ls1 + "/guestbook/entries/001")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), "<Code>InternalError</Code>") || !strings.Contains(string(body), "chainfire: ") {
		t.Fatalf("GET with chainfire down: %d %s", resp.StatusCode, body)
	}
	t.Logf("with chainfire down: %s", firstLineOf(string(body), "<Message>"))
	startChainfire()
	var got string
	waitFor(t, "read after chainfire restart", 60*time.Second, func() error {
		var err error
		got, err = get(c2, "entries/001", "")
		return err
	})
	if got != "hello from node02" {
		t.Fatalf("after restart: %q", got)
	}
}

// firstLineOf is the first line of s containing sub ("" if none).
func firstLineOf(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
