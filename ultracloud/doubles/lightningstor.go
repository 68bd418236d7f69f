package doubles

import (
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/johannesboyne/gofakes3"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Where lightningstor keeps its state in chainfire.
const (
	// PrefixLightningstorBuckets holds a bucket record per bucket.
	PrefixLightningstorBuckets = "/lightningstor/buckets/"
	// PrefixLightningstorObjects holds objects as <bucket>/<key>.
	PrefixLightningstorObjects = "/lightningstor/objects/"
	// MaxObjectBytes bounds an object: it is one chainfire value (etcd
	// refuses requests over 1.5 MiB by default).
	MaxObjectBytes = 1 << 20
)

// RunLightningstor serves lightningstor's object API on addr until ctx
// ends: the S3 protocol (gofakes3, a maintained S3 server library, path
// style, unsigned requests accepted) over a backend that keeps buckets and
// objects in chainfire, so every object is durable on the control-plane
// nodes' disks and readable through any lightningstor instance. GET
// /health answers 200 when chainfire serves a linearizable read.
//
// The S3 API is also served on each of extra (the fixture's
// LightningstorPort on every address: reachable from every node).
func RunLightningstor(ctx context.Context, addr string, cli *clientv3.Client, log *slog.Logger, extra ...string) error {
	s3 := gofakes3.New(NewStoreBackend(ctx, cli), gofakes3.WithAutoBucket(false), gofakes3.WithLogger(s3Log{log}))
	h := s3.Server()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", health("lightningstor", cli))
	mux.Handle("/", limitObjects(h))
	for _, a := range extra {
		stop, err := serve(a, mux, log)
		if err != nil {
			return fmt.Errorf("lightningstor: %w", err)
		}
		defer stop()
	}
	return run(ctx, addr, mux, log)
}

// LightningstorPort is the port the fixture's lightningstor serves S3 on,
// on every address of its node.
const LightningstorPort = 7480

// limitObjects answers S3's EntityTooLarge (400) to a PUT larger than
// MaxObjectBytes before the body is read.
func limitObjects(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.ContentLength > MaxObjectBytes {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Error><Code>EntityTooLarge</Code><Message>lightningstor keeps objects of at most %d bytes (one chainfire value)</Message><MaxSizeAllowed>%d</MaxSizeAllowed></Error>`, MaxObjectBytes, MaxObjectBytes)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// s3Log hands gofakes3's errors (the causes of its 500s) to slog.
type s3Log struct{ log *slog.Logger }

func (l s3Log) Print(level gofakes3.LogLevel, v ...any) {
	if level == gofakes3.LogErr {
		l.log.Warn("lightningstor: S3 request failed", "err", fmt.Sprint(v...))
	}
}

// chainfireErr is a failed chainfire call as S3's InternalError (500)
// naming its cause: gofakes3 answers any other error with "Internal
// Error" and nothing else, and a client (a bench, the webapp) needs to
// say why.
func chainfireErr(err error) error {
	return gofakes3.ErrorMessage(gofakes3.ErrInternal, "chainfire: "+err.Error())
}

// storeBackend is gofakes3's Backend over chainfire (etcd).
type storeBackend struct {
	ctx context.Context
	cli *clientv3.Client
}

// NewStoreBackend returns lightningstor's S3 backend: buckets and objects
// in chainfire; ctx bounds every operation (each also gets 10 s).
func NewStoreBackend(ctx context.Context, cli *clientv3.Client) gofakes3.Backend {
	return &storeBackend{ctx: ctx, cli: cli}
}

type bucketRecord struct {
	Created time.Time `json:"created"`
}

type objectRecord struct {
	Body     []byte            `json:"body"`
	Hash     []byte            `json:"md5"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Modified time.Time         `json:"modified"`
}

func (b *storeBackend) op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, 10*time.Second)
}

func bucketKey(name string) string        { return PrefixLightningstorBuckets + name }
func objectKey(bucket, key string) string { return PrefixLightningstorObjects + bucket + "/" + key }

func (b *storeBackend) ListBuckets() ([]gofakes3.BucketInfo, error) {
	ctx, cancel := b.op()
	defer cancel()
	resp, err := b.cli.Get(ctx, PrefixLightningstorBuckets, clientv3.WithPrefix())
	if err != nil {
		return nil, chainfireErr(err)
	}
	out := []gofakes3.BucketInfo{}
	for _, kv := range resp.Kvs {
		var rec bucketRecord
		json.Unmarshal(kv.Value, &rec)
		out = append(out, gofakes3.BucketInfo{Name: strings.TrimPrefix(string(kv.Key), PrefixLightningstorBuckets), CreationDate: gofakes3.NewContentTime(rec.Created)})
	}
	return out, nil
}

func (b *storeBackend) BucketExists(name string) (bool, error) {
	ctx, cancel := b.op()
	defer cancel()
	resp, err := b.cli.Get(ctx, bucketKey(name), clientv3.WithCountOnly())
	if err != nil {
		return false, chainfireErr(err)
	}
	return resp.Count > 0, nil
}

func (b *storeBackend) CreateBucket(name string) error {
	ctx, cancel := b.op()
	defer cancel()
	rec, _ := json.Marshal(bucketRecord{Created: time.Now().UTC()})
	resp, err := b.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(bucketKey(name)), "=", 0)).
		Then(clientv3.OpPut(bucketKey(name), string(rec))).Commit()
	if err != nil {
		return chainfireErr(err)
	}
	if !resp.Succeeded {
		return gofakes3.ResourceError(gofakes3.ErrBucketAlreadyExists, name)
	}
	return nil
}

func (b *storeBackend) DeleteBucket(name string) error {
	ctx, cancel := b.op()
	defer cancel()
	objs, err := b.cli.Get(ctx, PrefixLightningstorObjects+name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return chainfireErr(err)
	}
	if objs.Count > 0 {
		return gofakes3.ResourceError(gofakes3.ErrBucketNotEmpty, name)
	}
	return b.deleteBucket(ctx, name, false)
}

func (b *storeBackend) ForceDeleteBucket(name string) error {
	ctx, cancel := b.op()
	defer cancel()
	return b.deleteBucket(ctx, name, true)
}

func (b *storeBackend) deleteBucket(ctx context.Context, name string, objects bool) error {
	ops := []clientv3.Op{clientv3.OpDelete(bucketKey(name))}
	if objects {
		ops = append(ops, clientv3.OpDelete(PrefixLightningstorObjects+name+"/", clientv3.WithPrefix()))
	}
	resp, err := b.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(bucketKey(name)), ">", 0)).Then(ops...).Commit()
	if err != nil {
		return chainfireErr(err)
	}
	if !resp.Succeeded {
		return gofakes3.ErrNoSuchBucket
	}
	return nil
}

func (b *storeBackend) ListBucket(name string, prefix *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	if prefix == nil {
		prefix = &gofakes3.Prefix{}
	}
	if ok, err := b.BucketExists(name); err != nil || !ok {
		if err == nil {
			err = gofakes3.BucketNotFound(name)
		}
		return nil, err
	}
	ctx, cancel := b.op()
	defer cancel()
	base := PrefixLightningstorObjects + name + "/"
	from := base
	if prefix.HasPrefix {
		from += prefix.Prefix
	}
	resp, err := b.cli.Get(ctx, from, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, chainfireErr(err)
	}
	out := gofakes3.NewObjectList()
	var match gofakes3.PrefixMatch
	var last string
	var n int64
	for i, kv := range resp.Kvs {
		key := strings.TrimPrefix(string(kv.Key), base)
		if page.Marker != "" && key <= page.Marker {
			continue
		}
		if !prefix.Match(key, &match) {
			continue
		}
		if match.CommonPrefix {
			if match.MatchedPart == last {
				continue
			}
			out.AddPrefix(match.MatchedPart)
			last = match.MatchedPart
		} else {
			var rec objectRecord
			if err := json.Unmarshal(kv.Value, &rec); err != nil {
				return nil, fmt.Errorf("lightningstor: object %s: %w", key, err)
			}
			out.Add(&gofakes3.Content{Key: key, LastModified: gofakes3.NewContentTime(rec.Modified), ETag: gofakes3.FormatETag(rec.Hash), Size: int64(len(rec.Body))})
		}
		n++
		if page.MaxKeys > 0 && n >= page.MaxKeys {
			out.NextMarker = key
			out.IsTruncated = i+1 < len(resp.Kvs)
			break
		}
	}
	return out, nil
}

// get reads an object (nil when absent) and its mod revision.
func (b *storeBackend) get(bucket, key string) (*objectRecord, int64, error) {
	ctx, cancel := b.op()
	defer cancel()
	resp, err := b.cli.Txn(ctx).Then(clientv3.OpGet(bucketKey(bucket), clientv3.WithCountOnly()), clientv3.OpGet(objectKey(bucket, key))).Commit()
	if err != nil {
		return nil, 0, chainfireErr(err)
	}
	if resp.Responses[0].GetResponseRange().Count == 0 {
		return nil, 0, gofakes3.BucketNotFound(bucket)
	}
	kvs := resp.Responses[1].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, 0, nil
	}
	var rec objectRecord
	if err := json.Unmarshal(kvs[0].Value, &rec); err != nil {
		return nil, 0, fmt.Errorf("lightningstor: object %s/%s: %w", bucket, key, err)
	}
	return &rec, kvs[0].ModRevision, nil
}

func (rec *objectRecord) object(name string, rng *gofakes3.ObjectRangeRequest, body bool) (*gofakes3.Object, error) {
	obj := &gofakes3.Object{Name: name, Hash: rec.Hash, Metadata: rec.Metadata, Size: int64(len(rec.Body)), Contents: io.NopCloser(strings.NewReader(""))}
	if body {
		r, err := rng.Range(obj.Size)
		if err != nil {
			return nil, err
		}
		data := rec.Body
		if r != nil {
			data = data[r.Start : r.Start+r.Length]
		}
		obj.Range, obj.Contents = r, io.NopCloser(strings.NewReader(string(data)))
	}
	return obj, nil
}

func (b *storeBackend) HeadObject(bucket, key string) (*gofakes3.Object, error) {
	rec, _, err := b.get(bucket, key)
	if err == nil && rec == nil {
		err = gofakes3.KeyNotFound(key)
	}
	if err != nil {
		return nil, err
	}
	return rec.object(key, nil, false)
}

func (b *storeBackend) GetObject(bucket, key string, rng *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	rec, _, err := b.get(bucket, key)
	if err == nil && rec == nil {
		err = gofakes3.KeyNotFound(key)
	}
	if err != nil {
		return nil, err
	}
	return rec.object(key, rng, true)
}

func (b *storeBackend) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, cond *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	var res gofakes3.PutObjectResult
	if size > MaxObjectBytes {
		return res, gofakes3.ErrorMessage(gofakes3.ErrInvalidArgument, fmt.Sprintf("lightningstor keeps objects of at most %d bytes (one chainfire value)", MaxObjectBytes))
	}
	body, err := gofakes3.ReadAll(input, size)
	if err != nil {
		return res, err
	}
	existing, rev, err := b.get(bucket, key)
	if err != nil {
		return res, err
	}
	if cond != nil {
		info := &gofakes3.ConditionalObjectInfo{Exists: existing != nil}
		if existing != nil {
			info.Hash = existing.Hash
		}
		if err := gofakes3.CheckPutConditions(cond, info); err != nil {
			return res, err
		}
	}
	sum := md5.Sum(body)
	rec, _ := json.Marshal(objectRecord{Body: body, Hash: sum[:], Metadata: meta, Modified: time.Now().UTC()})
	ctx, cancel := b.op()
	defer cancel()
	// The object is written only if the bucket still exists and, under
	// conditions, nobody wrote the object since it was read.
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(bucketKey(bucket)), ">", 0)}
	if cond != nil {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(objectKey(bucket, key)), "=", rev))
	}
	resp, err := b.cli.Txn(ctx).If(cmps...).Then(clientv3.OpPut(objectKey(bucket, key), string(rec))).Commit()
	if err != nil {
		return res, chainfireErr(err)
	}
	if !resp.Succeeded {
		return res, gofakes3.ErrorMessage(gofakes3.ErrPreconditionFailed, "the bucket was deleted or the object changed meanwhile")
	}
	return res, nil
}

func (b *storeBackend) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	return gofakes3.CopyObject(b, srcBucket, srcKey, dstBucket, dstKey, meta)
}

func (b *storeBackend) DeleteObject(bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	ctx, cancel := b.op()
	defer cancel()
	resp, err := b.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(bucketKey(bucket)), ">", 0)).
		Then(clientv3.OpDelete(objectKey(bucket, key))).Commit()
	if err != nil {
		return gofakes3.ObjectDeleteResult{}, chainfireErr(err)
	}
	if !resp.Succeeded {
		return gofakes3.ObjectDeleteResult{}, gofakes3.BucketNotFound(bucket)
	}
	return gofakes3.ObjectDeleteResult{}, nil
}

func (b *storeBackend) DeleteMulti(bucket string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	var res gofakes3.MultiDeleteResult
	for _, k := range keys {
		if _, err := b.DeleteObject(bucket, k); err != nil {
			res.Error = append(res.Error, gofakes3.ErrorResultFromError(err))
			continue
		}
		res.Deleted = append(res.Deleted, gofakes3.ObjectID{Key: k})
	}
	return res, nil
}
