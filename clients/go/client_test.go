package shipgate_test

// Unit tests against an in-process mangos REP server on loopback tcp: the envelope, status
// decoding, retries, deadlines, cancellation, round robin, size caps. Each test is bounded in
// time (budgets of at most a few seconds).

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/rep"
	"google.golang.org/protobuf/proto"

	shipgate "shipgate.local/clients/go"
	pb "shipgate.local/clients/go/shipgatev1"
)

// ------------------------------------------------------------------ the fake gateway

// seen is one request the server received.
type seen struct {
	env *pb.RpcRequest
	at  time.Time
}

// handler answers the n-th request (0-based): the encoded reply, or nil for no reply.
type handler func(n int, env *pb.RpcRequest) []byte

type server struct {
	t     *testing.T
	sock  mangos.Socket
	addr  string
	h     handler
	probe handler // when set, answers every Health request (counted apart, in probes)

	mu       sync.Mutex
	reqs     []seen
	probes   []seen
	pipes    map[uint32]mangos.Pipe // connections now
	attached int                    // connections ever
}

// newServer starts a REP server with workers contexts answering in parallel.
func newServer(t *testing.T, workers int, h handler) *server {
	return newGateway(t, workers, nil, h)
}

// newGateway is newServer whose Health requests (a keyed call's probes, and Health calls) are
// answered by health instead of h, and counted apart: h numbers the other requests from 0.
func newGateway(t *testing.T, workers int, health, h handler) *server {
	t.Helper()
	sock, err := rep.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	if err := sock.SetOption(mangos.OptionMaxRecvSize, 16<<20); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, sock: sock, h: h, probe: health, pipes: map[uint32]mangos.Pipe{}}
	sock.SetPipeEventHook(func(ev mangos.PipeEvent, p mangos.Pipe) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch ev {
		case mangos.PipeEventAttached:
			s.pipes[p.ID()] = p
			s.attached++
		case mangos.PipeEventDetached:
			delete(s.pipes, p.ID())
		}
	})
	l, err := sock.NewListener("tcp://127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(); err != nil {
		t.Fatal(err)
	}
	s.addr = l.Address()
	for i := 0; i < workers; i++ {
		ctx, err := sock.OpenContext()
		if err != nil {
			t.Fatal(err)
		}
		go s.serve(ctx)
	}
	t.Cleanup(func() { _ = sock.Close() })
	return s
}

func (s *server) serve(ctx mangos.Context) {
	for {
		m, err := ctx.RecvMsg()
		if err != nil {
			return
		}
		env := &pb.RpcRequest{}
		if err := proto.Unmarshal(m.Body, env); err != nil {
			s.t.Errorf("server: bad envelope: %v", err)
			continue
		}
		h, list := s.h, &s.reqs
		if s.probe != nil && env.Method == shipgate.MethodHealth {
			h, list = s.probe, &s.probes
		}
		s.mu.Lock()
		n := len(*list)
		*list = append(*list, seen{env: env, at: time.Now()})
		s.mu.Unlock()
		if out := h(n, env); out != nil {
			_ = ctx.Send(out)
		}
	}
}

func (s *server) requests() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.reqs...)
}

func (s *server) count() int { return len(s.requests()) }

// healths returns the Health requests a newGateway server answered.
func (s *server) healths() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.probes...)
}

// drop closes the server's end of every connection (the clients redial).
func (s *server) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pipes {
		_ = p.Close()
	}
}

func (s *server) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attached
}

// ok answers with resp as the payload.
func ok(env *pb.RpcRequest, resp proto.Message) []byte {
	b, err := proto.Marshal(resp)
	if err != nil {
		panic(err)
	}
	out, _ := proto.Marshal(&pb.RpcReply{
		RequestId: env.RequestId,
		Status:    &pb.Status{Code: pb.Code_OK},
		Payload:   b,
	})
	return out
}

// fail answers with a status and detail.
func fail(env *pb.RpcRequest, code pb.Code, d *pb.ErrorDetail) []byte {
	out, _ := proto.Marshal(&pb.RpcReply{
		RequestId: env.RequestId,
		Status:    &pb.Status{Code: code, Message: "failed: " + code.String(), Detail: d},
	})
	return out
}

func healthy(_ int, env *pb.RpcRequest) []byte {
	return ok(env, &pb.HealthResponse{Status: pb.HealthResponse_SERVING_STATUS_SERVING, Version: "test"})
}

func silent(int, *pb.RpcRequest) []byte { return nil }

func unavailable(_ int, env *pb.RpcRequest) []byte {
	return fail(env, pb.Code_UNAVAILABLE, &pb.ErrorDetail{Reason: "UPSTREAM_UNAVAILABLE", Retryable: true})
}

// scoped answers Health as a gateway whose idempotency keys have that scope and fleet_id.
func scoped(scope, fleet string) handler {
	return func(_ int, env *pb.RpcRequest) []byte {
		store := "sqlite"
		if scope == "fleet" {
			store = "redis"
		}
		return ok(env, &pb.HealthResponse{Status: pb.HealthResponse_SERVING_STATUS_SERVING, Version: "test",
			IdempotencyStore: store, IdempotencyScope: scope, FleetId: fleet})
	}
}

var nodeHealth = scoped("node", "")

func fleetHealth(id string) handler { return scoped("fleet", id) }

// newClient makes a client and waits (bounded) until it is connected to every live address.
func newClient(t *testing.T, o shipgate.Options, live int) *shipgate.Client {
	t.Helper()
	c, err := shipgate.New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	until := time.Now().Add(3 * time.Second)
	for c.Connected() < live {
		if time.Now().After(until) {
			t.Fatalf("connected to %d of %d addresses after 3s", c.Connected(), live)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return c
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "tcp://" + addr
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// wantErr checks that err is an *Error with code and reason ("" = any) and returns it.
func wantErr(t *testing.T, err error, code shipgate.Code, reason string) *shipgate.Error {
	t.Helper()
	e, isErr := shipgate.AsError(err)
	if !isErr {
		t.Fatalf("got %v (%T), want *shipgate.Error %s %s", err, err, code, reason)
	}
	if e.Code != code || (reason != "" && e.Reason != reason) {
		t.Fatalf("got %s / %s (%q), want %s / %s", e.Code, e.Reason, e.Message, code, reason)
	}
	return e
}

var track = &pb.TrackRequest{Provider: pb.Provider_PROVIDER_BOSCOD, OrderId: "BOS123"}

// ------------------------------------------------------------------ the envelope

func TestEnvelopeFields(t *testing.T) {
	s := newServer(t, 1, func(_ int, env *pb.RpcRequest) []byte {
		return ok(env, &pb.TrackResponse{Tracking: &pb.Tracking{OrderId: "BOS123"}})
	})
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
	var info shipgate.CallInfo
	resp, err := c.Track(timeout(t, 2*time.Second), track,
		shipgate.WithRequestID("req-42"),
		shipgate.WithMetadata("caller", "unit-test"),
		shipgate.WithMetadata("trace.id", "abc"),
		shipgate.WithIdempotencyKey("key-1"),
		shipgate.WithCallInfo(&info))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetTracking().GetOrderId() != "BOS123" {
		t.Fatalf("response %v", resp)
	}
	if info.RequestID != "req-42" || info.Attempts != 1 || info.Address != s.addr {
		t.Fatalf("call info %+v", info)
	}
	reqs := s.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	env := reqs[0].env
	if env.Method != shipgate.MethodTrack || env.RequestId != "req-42" || env.IdempotencyKey != "key-1" {
		t.Fatalf("envelope %v", env)
	}
	if env.Metadata["caller"] != "unit-test" || env.Metadata["trace.id"] != "abc" || len(env.Metadata) != 2 {
		t.Fatalf("metadata %v", env.Metadata)
	}
	if env.DeadlineMs <= 1500 || env.DeadlineMs > 2000 {
		t.Fatalf("deadline_ms %d, want the context's remaining ~2000", env.DeadlineMs)
	}
	got := &pb.TrackRequest{}
	if err := proto.Unmarshal(env.Payload, got); err != nil || !proto.Equal(got, track) {
		t.Fatalf("payload %v (%v)", got, err)
	}
}

func TestEnvelopeDefaults(t *testing.T) {
	s := newServer(t, 1, healthy)
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}, DefaultDeadline: 3 * time.Second}, 1)
	// no context deadline: the client's default budget; a nil request is an empty one
	if _, err := c.Health(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	env := s.requests()[0].env
	if env.DeadlineMs <= 2500 || env.DeadlineMs > 3000 {
		t.Fatalf("deadline_ms %d, want the default ~3000", env.DeadlineMs)
	}
	if len(env.RequestId) != 16 || strings.Trim(env.RequestId, "0123456789abcdef") != "" {
		t.Fatalf("request id %q, want 16 hex digits", env.RequestId)
	}
	if env.Method != shipgate.MethodHealth || env.IdempotencyKey != "" || len(env.Metadata) != 0 || len(env.Payload) != 0 {
		t.Fatalf("envelope %v", env)
	}
	// method spellings
	for _, m := range []string{"Health", "shipgate.v1.Shipgate.Health", shipgate.MethodHealth} {
		if err := c.Call(context.Background(), m, &pb.HealthRequest{}, &pb.HealthResponse{}); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
	for _, r := range s.requests() {
		if r.env.Method != shipgate.MethodHealth {
			t.Fatalf("method %q", r.env.Method)
		}
	}
}

func TestPassThroughMethod(t *testing.T) {
	s := newServer(t, 1, func(_ int, env *pb.RpcRequest) []byte {
		return fail(env, pb.Code_UNAVAILABLE, &pb.ErrorDetail{Reason: "OVERLOADED", Retryable: true})
	})
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
	err := c.Call(timeout(t, 2*time.Second), "/other.v1.Service/Do", &pb.HealthRequest{}, &pb.HealthResponse{})
	e := wantErr(t, err, shipgate.Unavailable, "OVERLOADED")
	// a method the client does not know is not retried without an idempotency key
	if e.Attempts != 1 || s.count() != 1 || s.requests()[0].env.Method != "/other.v1.Service/Do" {
		t.Fatalf("attempts %d, requests %d", e.Attempts, s.count())
	}
}

// ------------------------------------------------------------------ statuses

func TestStatusDecoding(t *testing.T) {
	s := newServer(t, 1, func(_ int, env *pb.RpcRequest) []byte {
		return fail(env, pb.Code_NOT_FOUND, &pb.ErrorDetail{
			Reason:             "UPSTREAM_NOT_FOUND",
			UpstreamHttpStatus: 404,
			Provider:           "boscod",
			ProviderCode:       "E404",
			ProviderMessage:    "order not found",
			FieldViolations:    []*pb.FieldViolation{{Field: "order_id", Description: "unknown"}},
			RetryAfterMs:       1500,
		})
	})
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
	resp, err := c.Track(timeout(t, 2*time.Second), track)
	if resp != nil {
		t.Fatalf("response %v with an error", resp)
	}
	e := wantErr(t, err, shipgate.NotFound, "UPSTREAM_NOT_FOUND")
	if e.Message != "failed: NOT_FOUND" || e.Retryable || e.UpstreamHTTPStatus != 404 ||
		e.Provider != "boscod" || e.ProviderCode != "E404" || e.ProviderMessage != "order not found" ||
		len(e.Violations) != 1 || e.Violations[0] != (shipgate.Violation{Field: "order_id", Description: "unknown"}) ||
		e.RetryAfter != 1500*time.Millisecond || e.Attempts != 1 || e.Local || e.RequestID == "" {
		t.Fatalf("error %+v", e)
	}
	if s.count() != 1 {
		t.Fatalf("NOT_FOUND was retried: %d requests", s.count())
	}
	var as *shipgate.Error
	if !errors.As(err, &as) || shipgate.CodeOf(err) != shipgate.NotFound ||
		shipgate.ReasonOf(err) != "UPSTREAM_NOT_FOUND" || shipgate.IsRetryable(err) {
		t.Fatal("helpers disagree with the error")
	}
	msg := err.Error()
	for _, part := range []string{"NOT_FOUND", "UPSTREAM_NOT_FOUND", "order not found"} {
		if !strings.Contains(msg, part) {
			t.Fatalf("%q lacks %q", msg, part)
		}
	}
}

func TestCodes(t *testing.T) {
	if shipgate.NotFound.String() != "NOT_FOUND" || shipgate.OK.String() != "OK" ||
		shipgate.Unauthenticated.String() != "UNAUTHENTICATED" || shipgate.Code(99).String() != "Code(99)" {
		t.Fatal("Code.String")
	}
	for i := int32(0); i <= 16; i++ {
		if shipgate.Code(i).String() != pb.Code(i).String() {
			t.Fatalf("code %d: %s vs %s", i, shipgate.Code(i), pb.Code(i))
		}
	}
	if c, found := shipgate.ParseCode("deadline_exceeded"); !found || c != shipgate.DeadlineExceeded {
		t.Fatal("ParseCode")
	}
	if _, found := shipgate.ParseCode("NOPE"); found {
		t.Fatal("ParseCode accepted NOPE")
	}
	if shipgate.CodeOf(nil) != shipgate.OK || shipgate.CodeOf(context.Canceled) != shipgate.Cancelled ||
		shipgate.CodeOf(context.DeadlineExceeded) != shipgate.DeadlineExceeded ||
		shipgate.CodeOf(errors.New("x")) != shipgate.Unknown {
		t.Fatal("CodeOf")
	}
}

func TestBadReplies(t *testing.T) {
	cases := []struct {
		name  string
		reply func(env *pb.RpcRequest) []byte
	}{
		{"not protobuf", func(*pb.RpcRequest) []byte { return []byte{0xff, 0xff, 0xff} }},
		{"no status", func(env *pb.RpcRequest) []byte {
			b, _ := proto.Marshal(&pb.RpcReply{RequestId: env.RequestId})
			return b
		}},
		{"another request's answer", func(env *pb.RpcRequest) []byte {
			b, _ := proto.Marshal(&pb.RpcReply{RequestId: "other", Status: &pb.Status{}})
			return b
		}},
		{"payload of another type", func(env *pb.RpcRequest) []byte {
			b, _ := proto.Marshal(&pb.RpcReply{RequestId: env.RequestId, Status: &pb.Status{}, Payload: []byte{0x0a, 0xff}})
			return b
		}},
	}
	for _, tc := range cases {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, 1, func(_ int, env *pb.RpcRequest) []byte { return tc.reply(env) })
			c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
			_, err := c.Track(timeout(t, 2*time.Second), track)
			e := wantErr(t, err, shipgate.Internal, shipgate.ReasonClientBadReply)
			if !e.Local || e.Attempts != 1 || s.count() != 1 {
				t.Fatalf("local %v, attempts %d, requests %d", e.Local, e.Attempts, s.count())
			}
		})
	}
}

// ------------------------------------------------------------------ retries

func TestRetryIdempotentOnUnavailable(t *testing.T) {
	s := newServer(t, 1, unavailable)
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
	_, err := c.Track(timeout(t, 3*time.Second), track)
	e := wantErr(t, err, shipgate.Unavailable, "UPSTREAM_UNAVAILABLE")
	if e.Attempts != 3 || s.count() != 3 || e.Local {
		t.Fatalf("attempts %d, requests %d, local %v", e.Attempts, s.count(), e.Local)
	}
	reqs := s.requests()
	for _, r := range reqs {
		if r.env.RequestId != reqs[0].env.RequestId {
			t.Fatal("request id changed between attempts")
		}
	}
	// backoff: 50ms jittered to [25, 50], then 100ms to [50, 100]
	if gap := reqs[2].at.Sub(reqs[0].at); gap < 70*time.Millisecond || gap > 1500*time.Millisecond {
		t.Fatalf("three attempts within %v", gap)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	s := newServer(t, 1, func(n int, env *pb.RpcRequest) []byte {
		if n < 2 {
			return unavailable(n, env)
		}
		return ok(env, &pb.GetOrderResponse{Order: &pb.Order{Id: "o-1"}})
	})
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
	var info shipgate.CallInfo
	resp, err := c.GetOrder(timeout(t, 3*time.Second), &pb.GetOrderRequest{OrderId: "o-1"}, shipgate.WithCallInfo(&info))
	if err != nil || resp.GetOrder().GetId() != "o-1" || info.Attempts != 3 {
		t.Fatalf("resp %v, err %v, info %+v", resp, err, info)
	}
}

func TestNoRetryWithoutIdempotency(t *testing.T) {
	s := newServer(t, 1, unavailable)
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
	// CreateOrder through Call without a key: the gateway's answer, never retried
	err := c.Call(timeout(t, 3*time.Second), "CreateOrder", &pb.CreateOrderRequest{}, &pb.CreateOrderResponse{})
	if e := wantErr(t, err, shipgate.Unavailable, ""); e.Attempts != 1 || s.count() != 1 {
		t.Fatalf("attempts %d, requests %d", e.Attempts, s.count())
	}
	// other codes are never retried, even for idempotent methods
	for _, code := range []pb.Code{pb.Code_INVALID_ARGUMENT, pb.Code_RESOURCE_EXHAUSTED, pb.Code_INTERNAL, pb.Code_UNKNOWN} {
		code := code
		s2 := newServer(t, 1, func(_ int, env *pb.RpcRequest) []byte {
			return fail(env, code, &pb.ErrorDetail{Reason: "X", Retryable: true})
		})
		c2 := newClient(t, shipgate.Options{Addresses: []string{s2.addr}}, 1)
		_, err := c2.Track(timeout(t, 3*time.Second), track)
		if e := wantErr(t, err, shipgate.Code(code), "X"); e.Attempts != 1 || s2.count() != 1 {
			t.Fatalf("%s: attempts %d, requests %d", code, e.Attempts, s2.count())
		}
	}
}

func TestCreateOrderRetriesWithItsKey(t *testing.T) {
	// the keyed call asks Health first (answered apart): the handler sees the CreateOrders only
	s := newGateway(t, 1, nodeHealth, func(n int, env *pb.RpcRequest) []byte {
		if n < 2 {
			return unavailable(n, env)
		}
		return ok(env, &pb.CreateOrderResponse{Message: "created"})
	})
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
	resp, err := c.CreateOrder(timeout(t, 3*time.Second), &pb.CreateOrderRequest{FormId: "f"},
		shipgate.WithIdempotencyKey("order-1"))
	if err != nil || resp.GetMessage() != "created" {
		t.Fatalf("resp %v, err %v", resp, err)
	}
	reqs := s.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests", len(reqs))
	}
	for _, r := range reqs {
		if r.env.IdempotencyKey != "order-1" || r.env.Method != shipgate.MethodCreateOrder {
			t.Fatalf("attempt with key %q method %q", r.env.IdempotencyKey, r.env.Method)
		}
	}
}

func TestCreateOrderNeedsKey(t *testing.T) {
	s := newServer(t, 1, healthy)
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
	_, err := c.CreateOrder(timeout(t, time.Second), &pb.CreateOrderRequest{})
	if e := wantErr(t, err, shipgate.InvalidArgument, shipgate.ReasonClientInvalidArgument); !e.Local || e.Attempts != 0 {
		t.Fatalf("%+v", e)
	}
	if s.count() != 0 {
		t.Fatal("sent without a key")
	}
}

func TestRetryAfterLengthensBackoff(t *testing.T) {
	s := newServer(t, 1, func(n int, env *pb.RpcRequest) []byte {
		if n == 0 {
			return fail(env, pb.Code_UNAVAILABLE, &pb.ErrorDetail{Reason: "UPSTREAM_UNAVAILABLE", Retryable: true, RetryAfterMs: 300})
		}
		return healthy(n, env)
	})
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
	if _, err := c.Health(timeout(t, 3*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	reqs := s.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 290*time.Millisecond {
		t.Fatalf("retried after %v, want >= retry_after 300ms", gap)
	}
}

func TestNoRetryPastTheDeadline(t *testing.T) {
	s := newServer(t, 1, func(n int, env *pb.RpcRequest) []byte {
		return fail(env, pb.Code_UNAVAILABLE, &pb.ErrorDetail{Reason: "UPSTREAM_UNAVAILABLE", Retryable: true, RetryAfterMs: 5000})
	})
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
	start := time.Now()
	_, err := c.Health(timeout(t, time.Second), nil)
	e := wantErr(t, err, shipgate.Unavailable, "UPSTREAM_UNAVAILABLE")
	if e.Attempts != 1 || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("attempts %d after %v: the backoff does not fit the budget", e.Attempts, time.Since(start))
	}
}

func TestMaxAttempts(t *testing.T) {
	s := newServer(t, 1, unavailable)
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}, MaxAttempts: 2, BackoffBase: time.Millisecond}, 1)
	_, err := c.Track(timeout(t, 3*time.Second), track)
	if e := wantErr(t, err, shipgate.Unavailable, ""); e.Attempts != 2 {
		t.Fatalf("attempts %d", e.Attempts)
	}
	_, err = c.Track(timeout(t, 3*time.Second), track, shipgate.WithMaxAttempts(1))
	if e := wantErr(t, err, shipgate.Unavailable, ""); e.Attempts != 1 || s.count() != 3 {
		t.Fatalf("attempts %d, requests %d", e.Attempts, s.count())
	}
}

// ------------------------------------------------------------------ deadlines and cancellation

func TestExpiredDeadlineSendsNothing(t *testing.T) {
	s := newServer(t, 1, healthy)
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := c.Health(ctx, nil)
	e := wantErr(t, err, shipgate.DeadlineExceeded, shipgate.ReasonClientDeadlineExpired)
	if !e.Local || e.Attempts != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%+v", e)
	}
	time.Sleep(50 * time.Millisecond)
	if s.count() != 0 {
		t.Fatal("an expired call was sent")
	}
}

func TestTimeoutWithSilentGateway(t *testing.T) {
	s := newServer(t, 1, silent)
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
	start := time.Now()
	_, err := c.Track(timeout(t, 300*time.Millisecond), track)
	elapsed := time.Since(start)
	e := wantErr(t, err, shipgate.DeadlineExceeded, shipgate.ReasonTransportTimeout)
	if !e.Local || e.Attempts != 1 || s.count() != 1 {
		t.Fatalf("local %v, attempts %d, requests %d", e.Local, e.Attempts, s.count())
	}
	if elapsed < 250*time.Millisecond || elapsed > time.Second {
		t.Fatalf("returned after %v for a 300ms budget", elapsed)
	}
	// the client default applies without a context deadline
	c2 := newClient(t, shipgate.Options{Addresses: []string{s.addr}, DefaultDeadline: 200 * time.Millisecond}, 1)
	start = time.Now()
	_, err = c2.Track(context.Background(), track)
	wantErr(t, err, shipgate.DeadlineExceeded, shipgate.ReasonTransportTimeout)
	if elapsed := time.Since(start); elapsed < 150*time.Millisecond || elapsed > time.Second {
		t.Fatalf("returned after %v for a 200ms default", elapsed)
	}
}

func TestAttemptTimeoutRetries(t *testing.T) {
	s := newServer(t, 2, func(n int, env *pb.RpcRequest) []byte {
		if n == 0 {
			return nil // the first attempt gets no answer
		}
		return healthy(n, env)
	})
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}, AttemptTimeout: 200 * time.Millisecond}, 1)
	var info shipgate.CallInfo
	if _, err := c.Health(timeout(t, 3*time.Second), nil, shipgate.WithCallInfo(&info)); err != nil {
		t.Fatal(err)
	}
	reqs := s.requests()
	if info.Attempts != 2 || len(reqs) != 2 || reqs[0].env.DeadlineMs > 200 || reqs[0].env.DeadlineMs < 150 {
		t.Fatalf("info %+v, %d requests, deadline_ms %d", info, len(reqs), reqs[0].env.DeadlineMs)
	}
}

func TestCancel(t *testing.T) {
	s := newServer(t, 1, silent)
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.Track(ctx, track)
	e := wantErr(t, err, shipgate.Cancelled, shipgate.ReasonClientCancelled)
	if !errors.Is(err, context.Canceled) || !e.Local || time.Since(start) > time.Second {
		t.Fatalf("%+v after %v", e, time.Since(start))
	}
	// an already cancelled context sends nothing
	_, err = c.Health(ctx, nil)
	if e := wantErr(t, err, shipgate.Cancelled, shipgate.ReasonClientCancelled); e.Attempts != 0 || s.count() != 1 {
		t.Fatalf("attempts %d, requests %d", e.Attempts, s.count())
	}
}

func TestCloseCancelsCalls(t *testing.T) {
	s := newServer(t, 1, silent)
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
	time.AfterFunc(100*time.Millisecond, func() { _ = c.Close() })
	start := time.Now()
	_, err := c.Track(timeout(t, 5*time.Second), track)
	wantErr(t, err, shipgate.Cancelled, shipgate.ReasonClientCancelled)
	if time.Since(start) > time.Second {
		t.Fatalf("Close took %v to end the call", time.Since(start))
	}
	_, err = c.Health(timeout(t, time.Second), nil)
	wantErr(t, err, shipgate.Cancelled, shipgate.ReasonClientCancelled)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// ------------------------------------------------------------------ transport failures

func TestNotConnected(t *testing.T) {
	c := newClient(t, shipgate.Options{Addresses: []string{deadAddr(t)}, ConnectTimeout: 100 * time.Millisecond}, 0)
	start := time.Now()
	// never sent: retried whatever the method
	err := c.Call(timeout(t, 3*time.Second), "CreateOrder", &pb.CreateOrderRequest{}, &pb.CreateOrderResponse{})
	e := wantErr(t, err, shipgate.Unavailable, shipgate.ReasonTransportNotConnected)
	if !e.Local || !e.Retryable || e.Attempts != 3 || time.Since(start) > 2*time.Second {
		t.Fatalf("%+v after %v", e, time.Since(start))
	}
	// the budget ends before ConnectTimeout: DEADLINE_EXCEEDED
	_, err = c.Health(timeout(t, 80*time.Millisecond), nil)
	if e := wantErr(t, err, shipgate.DeadlineExceeded, shipgate.ReasonTransportNotConnected); e.Attempts != 1 || e.Retryable {
		t.Fatalf("%+v", e)
	}
}

func TestConnectionLost(t *testing.T) {
	var s *server
	s = newServer(t, 1, func(int, *pb.RpcRequest) []byte {
		_ = s.sock.Close() // hang up on the caller
		return nil
	})
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
	_, err := c.Track(timeout(t, 2*time.Second), track, shipgate.WithMaxAttempts(1))
	if e := wantErr(t, err, shipgate.Unavailable, shipgate.ReasonTransportConnectionLost); !e.Retryable || !e.Local {
		t.Fatalf("%+v", e)
	}
}

func TestReplySizeCap(t *testing.T) {
	s := newServer(t, 1, func(_ int, env *pb.RpcRequest) []byte {
		size := 1050 // over MaxReplySize, within the transport's slack
		if env.Metadata["size"] == "huge" {
			size = 100000 // far over: the transport drops the connection
		}
		return ok(env, &pb.HealthResponse{Version: strings.Repeat("v", size)})
	})
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}, MaxReplySize: 1024}, 1)
	_, err := c.Health(timeout(t, 2*time.Second), nil)
	if e := wantErr(t, err, shipgate.ResourceExhausted, shipgate.ReasonTransportReplyTooLarge); e.Attempts != 1 {
		t.Fatalf("attempts %d", e.Attempts)
	}
	_, err = c.Health(timeout(t, 2*time.Second), nil, shipgate.WithMetadata("size", "huge"), shipgate.WithMaxAttempts(1))
	wantErr(t, err, shipgate.Unavailable, shipgate.ReasonTransportConnectionLost)
}

// ------------------------------------------------------------------ several gateways, concurrency

func TestRoundRobin(t *testing.T) {
	a := newServer(t, 1, healthy)
	b := newServer(t, 1, healthy)
	c := newClient(t, shipgate.Options{Addresses: []string{a.addr, b.addr}}, 2)
	var addrs []string
	for i := 0; i < 6; i++ {
		var info shipgate.CallInfo
		if _, err := c.Health(timeout(t, 2*time.Second), nil, shipgate.WithCallInfo(&info)); err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, info.Address)
	}
	if a.count() != 3 || b.count() != 3 {
		t.Fatalf("spread %d / %d", a.count(), b.count())
	}
	for i := 1; i < len(addrs); i++ {
		if addrs[i] == addrs[i-1] {
			t.Fatalf("not alternating: %v", addrs)
		}
	}
}

func TestRoundRobinPrefersConnected(t *testing.T) {
	s := newServer(t, 1, healthy)
	c := newClient(t, shipgate.Options{Addresses: []string{deadAddr(t), s.addr}}, 1)
	for i := 0; i < 4; i++ {
		var info shipgate.CallInfo
		if _, err := c.Health(timeout(t, 2*time.Second), nil, shipgate.WithCallInfo(&info)); err != nil {
			t.Fatal(err)
		}
		if info.Attempts != 1 || info.Address != s.addr {
			t.Fatalf("call %d: %+v", i, info)
		}
	}
}

func TestConcurrentCalls(t *testing.T) {
	const n = 32
	s := newServer(t, n, func(k int, env *pb.RpcRequest) []byte {
		time.Sleep(200 * time.Millisecond)
		return ok(env, &pb.TrackResponse{Tracking: &pb.Tracking{OrderId: env.RequestId}})
	})
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := "call-" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
			resp, err := c.Track(timeout(t, 5*time.Second), track, shipgate.WithRequestID(id))
			if err == nil && resp.GetTracking().GetOrderId() != id {
				err = errors.New("answer of another call: " + resp.GetTracking().GetOrderId())
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Fatalf("%d calls of 200ms took %v: not concurrent", n, elapsed)
	}
}

// ------------------------------------------------------------------ local checks

func TestInvalidArguments(t *testing.T) {
	s := newServer(t, 1, healthy)
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
	ctx := timeout(t, time.Second)
	checks := []error{
		c.Call(ctx, "Teleport", &pb.HealthRequest{}, &pb.HealthResponse{}),
		c.Call(ctx, "", &pb.HealthRequest{}, &pb.HealthResponse{}),
		c.Call(ctx, "/nope", &pb.HealthRequest{}, &pb.HealthResponse{}),
		c.Call(ctx, shipgate.MethodTrack, &pb.HealthRequest{}, &pb.TrackResponse{}),
		c.Call(ctx, shipgate.MethodTrack, track, &pb.HealthResponse{}),
		c.Call(ctx, shipgate.MethodTrack, nil, &pb.TrackResponse{}),
		c.Call(ctx, shipgate.MethodHealth, &pb.HealthRequest{}, &pb.HealthResponse{}, shipgate.WithMetadata("Caller", "x")),
		c.Call(ctx, shipgate.MethodHealth, &pb.HealthRequest{}, &pb.HealthResponse{}, shipgate.WithMetadata("-x", "x")),
		c.Call(ctx, shipgate.MethodHealth, &pb.HealthRequest{}, &pb.HealthResponse{}, shipgate.WithMaxAttempts(-1)),
	}
	for i, err := range checks {
		e, isErr := shipgate.AsError(err)
		if !isErr || e.Code != shipgate.InvalidArgument || e.Reason != shipgate.ReasonClientInvalidArgument || !e.Local || e.Attempts != 0 {
			t.Fatalf("check %d: %v", i, err)
		}
	}
	if s.count() != 0 {
		t.Fatalf("%d invalid calls were sent", s.count())
	}
	if !shipgate.IsIdempotent("Track") || !shipgate.IsIdempotent(shipgate.MethodHealth) ||
		shipgate.IsIdempotent("CreateOrder") || shipgate.IsIdempotent("/x.Y/Z") {
		t.Fatal("IsIdempotent")
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, o := range []shipgate.Options{
		{Addresses: []string{"http://127.0.0.1:7400"}},
		{Addresses: []string{"inproc://x"}},
		{Addresses: []string{"tcp://127.0.0.1:1"}, MaxAttempts: -1},
		{Addresses: []string{"tcp://127.0.0.1:1"}, DefaultDeadline: -time.Second},
	} {
		if c, err := shipgate.New(o); err == nil {
			_ = c.Close()
			t.Fatalf("New(%+v) accepted", o)
		}
	}
	// the default address; nothing needs to listen there
	c, err := shipgate.New(shipgate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
}

func TestIPC(t *testing.T) {
	sock, err := rep.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	addr := "ipc://" + t.TempDir() + "/gw.sock"
	if err := sock.Listen(addr); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			m, err := sock.RecvMsg()
			if err != nil {
				return
			}
			env := &pb.RpcRequest{}
			_ = proto.Unmarshal(m.Body, env)
			_ = sock.Send(healthy(0, env))
		}
	}()
	c := newClient(t, shipgate.Options{Addresses: []string{addr}}, 1)
	resp, err := c.Health(timeout(t, 2*time.Second), nil)
	if err != nil || resp.GetVersion() != "test" {
		t.Fatalf("%v %v", resp, err)
	}
}

// ------------------------------------------------------------------ the retry rule (client_policy.json)

func TestGatewayDeadlineNotRetried(t *testing.T) {
	s := newServer(t, 2, func(n int, env *pb.RpcRequest) []byte {
		if n == 0 {
			return fail(env, pb.Code_DEADLINE_EXCEEDED, &pb.ErrorDetail{Reason: "DEADLINE_EXPIRED", Retryable: true})
		}
		return healthy(n, env)
	})
	// budget left after the first attempt: still not retried, the gateway spent what it was given
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}, AttemptTimeout: 500 * time.Millisecond}, 1)
	_, err := c.Health(timeout(t, 3*time.Second), nil)
	if e := wantErr(t, err, shipgate.DeadlineExceeded, "DEADLINE_EXPIRED"); e.Local || e.Attempts != 1 || s.count() != 1 {
		t.Fatalf("local %v, attempts %d, requests %d", e.Local, e.Attempts, s.count())
	}
	// the envelope carries the attempt's wait less the reply margin: min(50ms, a fifth)
	if d := s.requests()[0].env.DeadlineMs; d > 450 || d < 400 {
		t.Fatalf("deadline_ms %d for a 500ms attempt", d)
	}
}

func TestCreateOrderOutcomeUnknownWhenTheGatewayDies(t *testing.T) {
	var s1 *server
	// scope node: its keys are its own (the CreateOrder's Health probe answered apart)
	s1 = newGateway(t, 1, nodeHealth, func(int, *pb.RpcRequest) []byte {
		_ = s1.sock.Close() // killed while it holds the call
		return nil
	})
	s2 := newServer(t, 1, func(_ int, env *pb.RpcRequest) []byte {
		if env.Method == shipgate.MethodCreateOrder {
			return ok(env, &pb.CreateOrderResponse{Message: "second order"})
		}
		return ok(env, &pb.TrackResponse{})
	})
	c := newClient(t, shipgate.Options{Addresses: []string{s1.addr, s2.addr}}, 2)
	_, err := c.CreateOrder(timeout(t, 3*time.Second), &pb.CreateOrderRequest{FormId: "f"},
		shipgate.WithIdempotencyKey("order-lost"))
	e := wantErr(t, err, shipgate.Unknown, shipgate.ReasonOutcomeUnknown)
	if !e.Local || e.Retryable || e.Attempts != 1 || !strings.Contains(e.Message, shipgate.ReasonTransportConnectionLost) {
		t.Fatalf("%+v", e)
	}
	if s1.count() != 1 || s2.count() != 0 {
		t.Fatalf("requests: %d to the first gateway, %d to the second", s1.count(), s2.count())
	}
	// a read is retried on the live gateway
	if _, err := c.Track(timeout(t, 3*time.Second), track); err != nil {
		t.Fatal(err)
	}
}

func TestCreateOrderOutcomeUnknownOnTransportTimeout(t *testing.T) {
	// scope node; it answers the first Health (the CreateOrder's probe) and nothing after
	s1 := newGateway(t, 4, func(n int, env *pb.RpcRequest) []byte {
		if n == 0 {
			return nodeHealth(n, env)
		}
		return nil
	}, silent)
	s2 := newServer(t, 4, func(_ int, env *pb.RpcRequest) []byte {
		if env.Method == shipgate.MethodCreateOrder {
			return ok(env, &pb.CreateOrderResponse{Message: "second order"})
		}
		return healthy(0, env)
	})
	c := newClient(t, shipgate.Options{Addresses: []string{s1.addr, s2.addr}, AttemptTimeout: 200 * time.Millisecond}, 2)
	var info shipgate.CallInfo
	_, err := c.CreateOrder(timeout(t, 3*time.Second), &pb.CreateOrderRequest{FormId: "f"},
		shipgate.WithIdempotencyKey("order-silent"), shipgate.WithCallInfo(&info))
	e := wantErr(t, err, shipgate.Unknown, shipgate.ReasonOutcomeUnknown)
	if e.Attempts != 1 || info.Address != s1.addr || s1.count() != 1 || s2.count() != 0 {
		t.Fatalf("%+v, info %+v, requests %d / %d", e, info, s1.count(), s2.count())
	}
	// without a key, the same
	_, err = c.Health(timeout(t, 3*time.Second), nil) // the second gateway's turn
	if err != nil {
		t.Fatal(err)
	}
	err = c.Call(timeout(t, 3*time.Second), shipgate.MethodCreateOrder, &pb.CreateOrderRequest{}, &pb.CreateOrderResponse{})
	if e := wantErr(t, err, shipgate.Unknown, shipgate.ReasonOutcomeUnknown); e.Attempts != 1 {
		t.Fatalf("%+v", e)
	}
	// a read after its own transport timeout goes on to the next gateway
	_, _ = c.Health(timeout(t, 3*time.Second), nil) // the second gateway's turn
	if _, err := c.Health(timeout(t, 3*time.Second), nil, shipgate.WithCallInfo(&info)); err != nil || info.Attempts != 2 || info.Address != s2.addr {
		t.Fatalf("err %v, info %+v", err, info)
	}
	if s2.count() != 3 {
		t.Fatalf("%d requests to the second gateway", s2.count())
	}
}

// ------------------------------------------------------------------ fleets (client_policy.json, fleet)

var order = &pb.CreateOrderRequest{FormId: "f"}

// reads answers Track and GetOrder with empty responses, and CreateOrder with created.
func reads(created *pb.CreateOrderResponse) handler {
	return func(_ int, env *pb.RpcRequest) []byte {
		switch env.Method {
		case shipgate.MethodCreateOrder:
			return ok(env, created)
		case shipgate.MethodGetOrder:
			return ok(env, &pb.GetOrderResponse{})
		}
		return ok(env, &pb.TrackResponse{})
	}
}

// dies closes the server's socket on its first request: a gateway killed while it holds it.
func dies(s **server) handler {
	return func(int, *pb.RpcRequest) []byte {
		_ = (*s).sock.Close()
		return nil
	}
}

func TestKeyedCallAsksHealthOncePerConnection(t *testing.T) {
	t.Parallel() // no timing assertions: runs with the interop tests
	s := newGateway(t, 2, fleetHealth("f1"), reads(&pb.CreateOrderResponse{Message: "created"}))
	c := newClient(t, shipgate.Options{Addresses: []string{s.addr}}, 1)
	ctx := timeout(t, 5*time.Second)
	// idempotent calls never ask
	if _, err := c.Track(ctx, track, shipgate.WithIdempotencyKey("k-track")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetOrder(ctx, &pb.GetOrderRequest{OrderId: "o"}); err != nil {
		t.Fatal(err)
	}
	var info shipgate.CallInfo
	if _, err := c.Health(ctx, nil, shipgate.WithCallInfo(&info)); err != nil {
		t.Fatal(err)
	}
	if h := s.healths(); len(h) != 1 || h[0].env.RequestId != info.RequestID {
		t.Fatalf("%d Health requests, want the Health call's only", len(h))
	}
	// a keyed call asks on its connection first, then sends
	if _, err := c.CreateOrder(ctx, order, shipgate.WithIdempotencyKey("k-1"), shipgate.WithCallInfo(&info)); err != nil {
		t.Fatal(err)
	}
	h, reqs := s.healths(), s.requests()
	if len(h) != 2 || len(reqs) != 3 || info.Attempts != 1 {
		t.Fatalf("%d Health, %d other requests, info %+v", len(h), len(reqs), info)
	}
	probe := h[1].env
	if probe.RequestId == info.RequestID || probe.IdempotencyKey != "" || len(probe.Payload) != 0 ||
		probe.DeadlineMs <= 0 || probe.DeadlineMs > 5000 || h[1].at.After(reqs[2].at) {
		t.Fatalf("probe %v", probe)
	}
	if env := reqs[2].env; env.Method != shipgate.MethodCreateOrder || env.IdempotencyKey != "k-1" || env.RequestId != info.RequestID {
		t.Fatalf("CreateOrder envelope %v", env)
	}
	// the same connection: known
	if _, err := c.CreateOrder(ctx, order, shipgate.WithIdempotencyKey("k-2")); err != nil {
		t.Fatal(err)
	}
	// a call without a key never asks
	if err := c.Call(ctx, shipgate.MethodCreateOrder, order, &pb.CreateOrderResponse{}); err != nil {
		t.Fatal(err)
	}
	if len(s.healths()) != 2 || s.count() != 5 {
		t.Fatalf("%d Health, %d other requests", len(s.healths()), s.count())
	}
	// the connection replaced (dropped, redialed): asked again
	s.drop()
	for until := time.Now().Add(3 * time.Second); s.connections() < 2 || c.Connected() < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(until) {
			t.Fatal("the client did not redial within 3s")
		}
	}
	if _, err := c.CreateOrder(ctx, order, shipgate.WithIdempotencyKey("k-3")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateOrder(ctx, order, shipgate.WithIdempotencyKey("k-4")); err != nil {
		t.Fatal(err)
	}
	if len(s.healths()) != 3 || s.count() != 7 {
		t.Fatalf("after the reconnect: %d Health, %d other requests", len(s.healths()), s.count())
	}
}

// A Health that gets no answer is the attempt's failure, the keyed request not sent: retried.
func TestHealthProbeFailureIsAnUnsentAttempt(t *testing.T) {
	t.Parallel() // no timing assertions: runs with the interop tests
	for _, lost := range []bool{false, true} {
		lost := lost
		name := "no answer"
		if lost {
			name = "connection lost"
		}
		t.Run(name, func(t *testing.T) {
			var s1 *server
			probe := silent
			if lost {
				probe = dies(&s1)
			}
			s1 = newGateway(t, 2, probe, reads(&pb.CreateOrderResponse{Message: "first"}))
			s2 := newGateway(t, 2, nodeHealth, reads(&pb.CreateOrderResponse{Message: "second"}))
			c := newClient(t, shipgate.Options{Addresses: []string{s1.addr, s2.addr}, AttemptTimeout: 200 * time.Millisecond}, 2)
			var info shipgate.CallInfo
			resp, err := c.CreateOrder(timeout(t, 3*time.Second), order, shipgate.WithIdempotencyKey("k"), shipgate.WithCallInfo(&info))
			if err != nil || resp.GetMessage() != "second" || info.Attempts != 2 || info.Address != s2.addr {
				t.Fatalf("resp %v, err %v, info %+v", resp, err, info)
			}
			if len(s1.healths()) != 1 || s1.count() != 0 || len(s2.healths()) != 1 || s2.count() != 1 {
				t.Fatalf("first: %d Health %d other; second: %d Health %d other",
					len(s1.healths()), s1.count(), len(s2.healths()), s2.count())
			}
		})
	}
	// a Health that answers an error is no fleet: the call goes on as with scope node
	var s1 *server
	s1 = newGateway(t, 1, func(_ int, env *pb.RpcRequest) []byte {
		return fail(env, pb.Code_UNIMPLEMENTED, &pb.ErrorDetail{Reason: "METHOD_NOT_FOUND"})
	}, dies(&s1))
	s2 := newGateway(t, 1, fleetHealth("f"), reads(&pb.CreateOrderResponse{}))
	c := newClient(t, shipgate.Options{Addresses: []string{s1.addr, s2.addr}}, 2)
	_, err := c.CreateOrder(timeout(t, 3*time.Second), order, shipgate.WithIdempotencyKey("k-err"))
	if e := wantErr(t, err, shipgate.Unknown, shipgate.ReasonOutcomeUnknown); e.Attempts != 1 || s2.count() != 0 || len(s2.healths()) != 0 {
		t.Fatalf("%+v; second gateway: %d requests", e, s2.count())
	}
}

func TestFleetFailover(t *testing.T) {
	t.Parallel() // no timing assertions: runs with the interop tests
	for _, how := range []string{"connection lost", "attempt timeout"} {
		how := how
		t.Run(how, func(t *testing.T) {
			var s1 *server
			o := shipgate.Options{}
			first := dies(&s1)
			if how == "attempt timeout" {
				first = silent
				o.AttemptTimeout = 300 * time.Millisecond
			}
			s1 = newGateway(t, 2, fleetHealth("fleet-a"), first)
			s2 := newGateway(t, 2, fleetHealth("fleet-a"), reads(&pb.CreateOrderResponse{Message: "the first one's", Replayed: true}))
			o.Addresses = []string{s1.addr, s2.addr}
			c := newClient(t, o, 2)
			var info shipgate.CallInfo
			resp, err := c.CreateOrder(timeout(t, 3*time.Second), order, shipgate.WithIdempotencyKey("k-fleet"), shipgate.WithCallInfo(&info))
			if err != nil || !resp.GetReplayed() || resp.GetMessage() != "the first one's" {
				t.Fatalf("resp %v, err %v", resp, err)
			}
			if info.Attempts != 2 || info.Address != s2.addr || s1.count() != 1 || s2.count() != 1 ||
				len(s1.healths()) != 1 || len(s2.healths()) != 1 {
				t.Fatalf("info %+v; first %d (+%d Health), second %d (+%d Health)", info,
					s1.count(), len(s1.healths()), s2.count(), len(s2.healths()))
			}
			a, b := s1.requests()[0].env, s2.requests()[0].env
			if a.IdempotencyKey != "k-fleet" || b.IdempotencyKey != "k-fleet" || a.RequestId != b.RequestId ||
				a.Method != b.Method || string(a.Payload) != string(b.Payload) {
				t.Fatalf("the retry is not the same request: %v / %v", a, b)
			}
		})
	}
}

func TestFleetMismatchEndsOutcomeUnknown(t *testing.T) {
	t.Parallel() // no timing assertions: runs with the interop tests
	cases := []struct {
		name   string
		health handler
		about  string
	}{
		{"another fleet", fleetHealth("fleet-b"), `fleet "fleet-b"`},
		{"scope node", nodeHealth, `"node"`},
		{"scope node with a fleet id", scoped("node", "fleet-a"), `"node"`},
		{"fleet without an id", scoped("fleet", ""), `"fleet"`},
		{"Health answers an error", func(_ int, env *pb.RpcRequest) []byte {
			return fail(env, pb.Code_UNIMPLEMENTED, &pb.ErrorDetail{Reason: "METHOD_NOT_FOUND"})
		}, "UNIMPLEMENTED"},
	}
	for _, tc := range cases {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			var s1 *server
			s1 = newGateway(t, 1, fleetHealth("fleet-a"), dies(&s1))
			s2 := newGateway(t, 1, tc.health, reads(&pb.CreateOrderResponse{Message: "second order"}))
			c := newClient(t, shipgate.Options{Addresses: []string{s1.addr, s2.addr}}, 2)
			_, err := c.CreateOrder(timeout(t, 3*time.Second), order, shipgate.WithIdempotencyKey("k-mismatch"))
			e := wantErr(t, err, shipgate.Unknown, shipgate.ReasonOutcomeUnknown)
			if !e.Local || e.Retryable || e.Attempts != 2 {
				t.Fatalf("%+v", e)
			}
			if s1.count() != 1 || s2.count() != 0 || len(s2.healths()) != 1 {
				t.Fatalf("first %d, second %d (+%d Health)", s1.count(), s2.count(), len(s2.healths()))
			}
			for _, part := range []string{s1.addr, s2.addr, `"fleet-a"`, tc.about} {
				if !strings.Contains(e.Message, part) {
					t.Fatalf("%q does not name %s", e.Message, part)
				}
			}
		})
	}
}

// After a failover, an answer that does not settle the call (fleet.unsettled_codes, or no answer)
// is OUTCOME_UNKNOWN; the second gateway's own OUTCOME_UNKNOWN, or another code, is reported as is.
func TestFleetFailoverSettling(t *testing.T) {
	t.Parallel() // no timing assertions: runs with the interop tests
	status := func(code pb.Code, reason string) handler {
		return func(_ int, env *pb.RpcRequest) []byte {
			return fail(env, code, &pb.ErrorDetail{Reason: reason, Retryable: code == pb.Code_UNAVAILABLE})
		}
	}
	cases := []struct {
		name   string
		second handler
		code   shipgate.Code
		reason string
		local  bool
	}{
		{"DEADLINE_EXCEEDED", status(pb.Code_DEADLINE_EXCEEDED, "DEADLINE_EXPIRED"), shipgate.Unknown, shipgate.ReasonOutcomeUnknown, true},
		{"UNAVAILABLE", status(pb.Code_UNAVAILABLE, "IDEMPOTENCY_STORE_UNAVAILABLE"), shipgate.Unknown, shipgate.ReasonOutcomeUnknown, true},
		{"ABORTED", status(pb.Code_ABORTED, "IDEMPOTENCY_KEY_IN_PROGRESS"), shipgate.Unknown, shipgate.ReasonOutcomeUnknown, true},
		{"RESOURCE_EXHAUSTED", status(pb.Code_RESOURCE_EXHAUSTED, "OVERLOADED"), shipgate.Unknown, shipgate.ReasonOutcomeUnknown, true},
		{"no answer", silent, shipgate.Unknown, shipgate.ReasonOutcomeUnknown, true},
		{"its own OUTCOME_UNKNOWN", status(pb.Code_UNKNOWN, "OUTCOME_UNKNOWN"), shipgate.Unknown, shipgate.ReasonOutcomeUnknown, false},
		{"FAILED_PRECONDITION", status(pb.Code_FAILED_PRECONDITION, "IDEMPOTENCY_KEY_REUSED"), shipgate.FailedPrecondition, "IDEMPOTENCY_KEY_REUSED", false},
	}
	for _, tc := range cases {
		tc := tc
		t.Run(tc.name, func(t *testing.T) {
			var s1 *server
			s1 = newGateway(t, 1, fleetHealth("fleet-a"), dies(&s1))
			s2 := newGateway(t, 1, fleetHealth("fleet-a"), tc.second)
			c := newClient(t, shipgate.Options{Addresses: []string{s1.addr, s2.addr}, ConnectTimeout: 200 * time.Millisecond}, 2)
			var info shipgate.CallInfo
			_, err := c.CreateOrder(timeout(t, 600*time.Millisecond), order, shipgate.WithIdempotencyKey("k-settle"), shipgate.WithCallInfo(&info))
			e := wantErr(t, err, tc.code, tc.reason)
			if e.Local != tc.local || e.Retryable || info.Attempts < 2 || s1.count() != 1 || s2.count() < 1 {
				t.Fatalf("%+v, info %+v; requests %d / %d", e, info, s1.count(), s2.count())
			}
			if tc.local {
				for _, part := range []string{s1.addr, s2.addr, shipgate.ReasonTransportConnectionLost} {
					if !strings.Contains(e.Message, part) {
						t.Fatalf("%q does not name %s", e.Message, part)
					}
				}
				if tc.name != "no answer" && !strings.Contains(e.Message, tc.name) {
					t.Fatalf("%q does not keep the last status %s", e.Message, tc.name)
				}
			}
		})
	}
	// cancelled while the second gateway has it: unknown too, and still a context error
	var s1 *server
	s1 = newGateway(t, 1, fleetHealth("fleet-a"), dies(&s1))
	s2 := newGateway(t, 1, fleetHealth("fleet-a"), silent)
	c := newClient(t, shipgate.Options{Addresses: []string{s1.addr, s2.addr}}, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		for until := time.Now().Add(3 * time.Second); s2.count() == 0 && time.Now().Before(until); {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	_, err := c.CreateOrder(ctx, order, shipgate.WithIdempotencyKey("k-cancel"))
	if e := wantErr(t, err, shipgate.Unknown, shipgate.ReasonOutcomeUnknown); !errors.Is(err, context.Canceled) || s2.count() != 1 {
		t.Fatalf("%+v (requests to the second: %d)", e, s2.count())
	}
	// without a failover, a cancelled CreateOrder stays CANCELLED
	s3 := newGateway(t, 1, fleetHealth("fleet-a"), silent)
	c3 := newClient(t, shipgate.Options{Addresses: []string{s3.addr}}, 1)
	ctx3, cancel3 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel3()
	time.AfterFunc(100*time.Millisecond, cancel3)
	_, err = c3.CreateOrder(ctx3, order, shipgate.WithIdempotencyKey("k-cancel-1"))
	wantErr(t, err, shipgate.Cancelled, shipgate.ReasonClientCancelled)
}
