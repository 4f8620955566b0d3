// Package shipgate is the Go client of the shipgate gateway.
//
// A call sends one shipgate.v1.RpcRequest (rpc.proto) on an SP REQ socket (mangos v3, the pure
// Go implementation of nng's protocols) and waits for one RpcReply. The messages of the
// contract are generated into the subpackage shipgatev1. On top of a bare REQ socket the client
// adds what the C client (include/shipgate/client.h) adds, with the same rules:
//
//   - Several gateways. Each address (tcp:// or ipc://) gets its own REQ socket with one
//     dialer, and attempts go round-robin over the addresses, preferring ones connected now.
//     One socket per address (rather than one socket dialing all) makes the spread
//     deterministic and tells which connection a request went out on.
//   - Deadlines. The budget of a call is its context's deadline, else Options.DefaultDeadline;
//     it covers every attempt and backoff. An attempt waits no longer than the budget left
//     when it is encoded (or Options.AttemptTimeout), and its envelope's deadline_ms is that
//     wait less a margin for the reply's way back (min(50ms, a fifth)), so that a gateway
//     keeping its deadline answers first. A call whose budget is
//     already spent fails with DEADLINE_EXCEEDED / CLIENT_DEADLINE_EXPIRED without sending.
//     Cancelling the context cancels the call (CANCELLED / CLIENT_CANCELLED).
//   - Retries, explicit and bounded, by the rule in proto/shipgate/v1/client_policy.json
//     (generated into policy_gen.go; the C, Python and Node clients generate theirs from the
//     same file). The socket's own resend is off (OptionRetryTime = 0): a resend would
//     deliver one request several times. The client retries, with exponential backoff and
//     jitter, within the budget and up to Options.MaxAttempts: any method when the attempt
//     provably never left the client (TRANSPORT_NOT_CONNECTED); idempotent methods (Track,
//     GetOrder, Health) after UNAVAILABLE (from the gateway or the transport) and after the
//     client's own TRANSPORT_TIMEOUT that left budget (only possible with
//     Options.AttemptTimeout); CreateOrder (and methods unknown to this client) with an
//     idempotency key, sent unchanged in every attempt, after the gateway's UNAVAILABLE only.
//     A DEADLINE_EXCEEDED from the gateway is never retried: it kept the budget it was given
//     and spent it. A CreateOrder (or unknown method) whose request went out and whose
//     connection then broke, or whose gateway did not answer in time, is not retried at all,
//     on this address or another: it ends with UNKNOWN / OUTCOME_UNKNOWN, since the gateway
//     may still be working on it. The gateway's retry_after_ms, when given, lengthens the
//     backoff.
//   - Concurrency. Every attempt has its own socket context (OpenContext), so any number of
//     calls may run at once on one Client, from any goroutines.
//   - Capped replies. OptionMaxRecvSize is set on every socket before it dials, and the client
//     checks the size again itself.
//
// Every failure is an *Error (see errors.go for the reasons the client makes itself).
package shipgate

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"time"

	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/req"
	"google.golang.org/protobuf/proto"

	// the transports the gateway speaks that mangos implements compatibly
	_ "go.nanomsg.org/mangos/v3/transport/ipc"
	_ "go.nanomsg.org/mangos/v3/transport/tcp"

	"shipgate.local/clients/go/shipgatev1"
)

// DefaultAddress is the gateway address used when Options.Addresses is empty.
const DefaultAddress = "tcp://127.0.0.1:7400"

// Full method names in gRPC form, as RpcRequest.method carries them.
const (
	MethodTrack       = "/shipgate.v1.Shipgate/Track"
	MethodGetOrder    = "/shipgate.v1.Shipgate/GetOrder"
	MethodCreateOrder = "/shipgate.v1.Shipgate/CreateOrder"
	MethodHealth      = "/shipgate.v1.Shipgate/Health"
)

// Defaults of Options, from proto/shipgate/v1/client_policy.json (policy_gen.go).
const (
	DefaultDeadline       = policyDeadlineMs * time.Millisecond
	DefaultMaxReplySize   = policyMaxReplySize
	DefaultMaxAttempts    = policyMaxAttempts
	DefaultBackoffBase    = policyBackoffBaseMs * time.Millisecond
	DefaultBackoffCap     = policyBackoffCapMs * time.Millisecond
	DefaultConnectTimeout = policyConnectTimeoutMs * time.Millisecond
)

const (
	reconnectMin = policyReconnectMinMs * time.Millisecond
	reconnectMax = policyReconnectMaxMs * time.Millisecond
	// OptionMaxRecvSize counts the SP header (4 bytes of request id) too; the client checks
	// the body against MaxReplySize itself.
	replyHeaderSlack = 64
)

// Options configure New. Zero fields take the defaults shown; negative values are refused.
type Options struct {
	// Gateway addresses: "tcp://host:port" or "ipc:///path". Empty: DefaultAddress.
	Addresses []string
	// Budget of a call whose context has no deadline. 0: 10s.
	DefaultDeadline time.Duration
	// Largest RpcReply accepted, in bytes. 0: 4 MiB.
	MaxReplySize int
	// Attempts in all, the first included. 0: 3; 1: never retry.
	MaxAttempts int
	// Backoff before the first retry, doubled for each next one up to BackoffCap; each wait
	// is jittered to [d/2, d]. 0: 50ms and 1s.
	BackoffBase time.Duration
	BackoffCap  time.Duration
	// Longest an attempt waits for a connection to take the request. 0: 1s.
	ConnectTimeout time.Duration
	// Longest wait for one reply (and the deadline_ms an attempt carries). 0: the whole
	// remaining budget.
	AttemptTimeout time.Duration
}

// CallOption sets per-call options: WithIdempotencyKey, WithMetadata, WithRequestID,
// WithMaxAttempts, WithCallInfo.
type CallOption func(*callOptions)

type callOptions struct {
	idempotencyKey string
	metadata       map[string]string
	requestID      string
	maxAttempts    int
	info           *CallInfo
}

// WithIdempotencyKey sends key as RpcRequest.idempotency_key in every attempt. CreateOrder
// requires one (1–255 printable ASCII); with a key, a CreateOrder (or unknown method) that the
// gateway answered UNAVAILABLE is retried.
func WithIdempotencyKey(key string) CallOption {
	return func(o *callOptions) { o.idempotencyKey = key }
}

// WithMetadata adds one RpcRequest.metadata entry. Keys are lower-case ASCII [a-z0-9._-],
// starting with a letter or digit; a bad key fails the call with INVALID_ARGUMENT.
func WithMetadata(key, value string) CallOption {
	return func(o *callOptions) {
		if o.metadata == nil {
			o.metadata = map[string]string{}
		}
		o.metadata[key] = value
	}
}

// WithRequestID sets RpcRequest.request_id (default: 16 random hex digits).
func WithRequestID(id string) CallOption {
	return func(o *callOptions) { o.requestID = id }
}

// WithMaxAttempts overrides Options.MaxAttempts for one call (1: never retry).
func WithMaxAttempts(n int) CallOption {
	return func(o *callOptions) { o.maxAttempts = n }
}

// CallInfo receives facts about a finished call, whatever its outcome (WithCallInfo).
type CallInfo struct {
	RequestID string // the request_id sent
	Attempts  int    // attempts sent or tried
	Address   string // the address of the last attempt; "" when none was made
}

// WithCallInfo fills *info when the call returns.
func WithCallInfo(info *CallInfo) CallOption {
	return func(o *callOptions) { o.info = info }
}

// ------------------------------------------------------------------ endpoints

// endpoint is one gateway address: a REQ socket with one dialer.
type endpoint struct {
	addr string
	sock mangos.Socket

	mu   sync.Mutex
	live map[uint32]struct{} // pipes attached and not detached
	gone map[uint32]struct{} // pipes whose Detached event came before their Attached one
}

// hook follows the endpoint's connections. mangos reports Detached from its own goroutine, so
// it may arrive before Attached for a pipe that closed at once.
func (ep *endpoint) hook(ev mangos.PipeEvent, p mangos.Pipe) {
	id := p.ID()
	ep.mu.Lock()
	defer ep.mu.Unlock()
	switch ev {
	case mangos.PipeEventAttached:
		if _, ok := ep.gone[id]; ok {
			delete(ep.gone, id)
		} else {
			ep.live[id] = struct{}{}
		}
	case mangos.PipeEventDetached:
		if _, ok := ep.live[id]; ok {
			delete(ep.live, id)
		} else {
			ep.gone[id] = struct{}{}
		}
	}
}

func (ep *endpoint) up() bool {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return len(ep.live) > 0
}

// ------------------------------------------------------------------ client

// Client calls shipgate gateways. It is safe for concurrent use by any number of goroutines.
type Client struct {
	opts Options
	eps  []*endpoint

	mu     sync.Mutex
	rr     int  // where the next round-robin pick starts
	closed bool // Close has begun
	done   chan struct{}

	rndMu sync.Mutex
	rnd   *rand.Rand // backoff jitter
}

// New creates a client: one REQ socket per address (resend off, OptionMaxRecvSize set), each
// dialing in the background (a gateway that is down now is redialed every 100ms..1s). It fails
// only on bad options or an address whose transport is unknown or malformed.
func New(o Options) (*Client, error) {
	if o.DefaultDeadline < 0 || o.MaxReplySize < 0 || o.MaxAttempts < 0 || o.BackoffBase < 0 ||
		o.BackoffCap < 0 || o.ConnectTimeout < 0 || o.AttemptTimeout < 0 {
		return nil, errors.New("shipgate: negative option")
	}
	if len(o.Addresses) == 0 {
		o.Addresses = []string{DefaultAddress}
	}
	o.Addresses = append([]string(nil), o.Addresses...)
	if o.DefaultDeadline == 0 {
		o.DefaultDeadline = DefaultDeadline
	}
	if o.MaxReplySize == 0 {
		o.MaxReplySize = DefaultMaxReplySize
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.BackoffBase == 0 {
		o.BackoffBase = DefaultBackoffBase
	}
	if o.BackoffCap == 0 {
		o.BackoffCap = DefaultBackoffCap
	}
	if o.BackoffCap < o.BackoffBase {
		o.BackoffCap = o.BackoffBase
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.AttemptTimeout == 0 {
		o.AttemptTimeout = policyAttemptTimeoutMs * time.Millisecond
	}
	c := &Client{
		opts: o,
		done: make(chan struct{}),
		rnd:  rand.New(rand.NewSource(time.Now().UnixNano())),
	}
	for _, addr := range o.Addresses {
		ep, err := c.open(addr)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.eps = append(c.eps, ep)
	}
	return c, nil
}

func (c *Client) open(addr string) (*endpoint, error) {
	if !strings.HasPrefix(addr, "tcp://") && !strings.HasPrefix(addr, "ipc://") {
		return nil, fmt.Errorf("shipgate: address %q: only tcp:// and ipc:// are supported", addr)
	}
	sock, err := req.NewSocket()
	if err != nil {
		return nil, fmt.Errorf("shipgate: %s: %w", addr, err)
	}
	ep := &endpoint{addr: addr, sock: sock, live: map[uint32]struct{}{}, gone: map[uint32]struct{}{}}
	sock.SetPipeEventHook(ep.hook)
	// all before dialing: contexts copy the resend time, dialers the size limit
	for _, opt := range []struct {
		name  string
		value interface{}
	}{
		{mangos.OptionRetryTime, time.Duration(0)},
		{mangos.OptionMaxRecvSize, c.opts.MaxReplySize + replyHeaderSlack},
		{mangos.OptionReconnectTime, reconnectMin},
		{mangos.OptionMaxReconnectTime, reconnectMax},
	} {
		if err := sock.SetOption(opt.name, opt.value); err != nil {
			_ = sock.Close()
			return nil, fmt.Errorf("shipgate: %s: option %s: %w", addr, opt.name, err)
		}
	}
	if err := sock.DialOptions(addr, map[string]interface{}{mangos.OptionDialAsynch: true}); err != nil {
		_ = sock.Close()
		return nil, fmt.Errorf("shipgate: %s: %w", addr, err)
	}
	return ep, nil
}

// Close closes the sockets. Calls in flight end with CANCELLED / CLIENT_CANCELLED, and so do
// calls made afterwards. Close may be called more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.done)
	c.mu.Unlock()
	for _, ep := range c.eps {
		_ = ep.sock.Close()
	}
	return nil
}

// Connected returns how many of the client's addresses have a live connection now.
func (c *Client) Connected() int {
	n := 0
	for _, ep := range c.eps {
		if ep.up() {
			n++
		}
	}
	return n
}

// pick chooses the endpoint of the next attempt: round robin, preferring connected ones.
func (c *Client) pick() *endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(c.eps)
	for k := 0; k < n; k++ {
		i := (c.rr + k) % n
		if c.eps[i].up() {
			c.rr = i + 1
			return c.eps[i]
		}
	}
	i := c.rr % n
	c.rr = i + 1
	return c.eps[i]
}

// backoff is the wait before retry number n (1-based): exponential, capped, jittered to [d/2, d].
func (c *Client) backoff(n int) time.Duration {
	d := c.opts.BackoffBase
	for i := 1; i < n && d < c.opts.BackoffCap; i++ {
		d *= 2
	}
	if d > c.opts.BackoffCap {
		d = c.opts.BackoffCap
	}
	c.rndMu.Lock()
	j := time.Duration(c.rnd.Int63n(int64(d/2) + 1))
	c.rndMu.Unlock()
	return d/2 + j
}

// ------------------------------------------------------------------ methods

type methodInfo struct {
	full       string
	input      string // full name of the request message
	output     string // full name of the response message
	idempotent bool
}

var methods = func() map[string]methodInfo {
	m := map[string]methodInfo{
		"Track":       {MethodTrack, "shipgate.v1.TrackRequest", "shipgate.v1.TrackResponse", false},
		"GetOrder":    {MethodGetOrder, "shipgate.v1.GetOrderRequest", "shipgate.v1.GetOrderResponse", false},
		"CreateOrder": {MethodCreateOrder, "shipgate.v1.CreateOrderRequest", "shipgate.v1.CreateOrderResponse", false},
		"Health":      {MethodHealth, "shipgate.v1.HealthRequest", "shipgate.v1.HealthResponse", false},
	}
	for _, name := range policyIdempotentMethods { // client_policy.json
		mi := m[name]
		mi.idempotent = true
		m[name] = mi
	}
	return m
}()

// lookupMethod resolves "Track", "shipgate.v1.Shipgate.Track" or "/shipgate.v1.Shipgate/Track".
func lookupMethod(name string) (methodInfo, bool) {
	short := name
	switch {
	case strings.HasPrefix(name, "/shipgate.v1.Shipgate/"):
		short = strings.TrimPrefix(name, "/shipgate.v1.Shipgate/")
	case strings.HasPrefix(name, "shipgate.v1.Shipgate."):
		short = strings.TrimPrefix(name, "shipgate.v1.Shipgate.")
	}
	m, ok := methods[short]
	return m, ok
}

// IsIdempotent reports whether the method (any spelling Call accepts) is one of the contract's
// idempotent methods, retried without an idempotency key.
func IsIdempotent(method string) bool {
	m, ok := lookupMethod(method)
	return ok && m.idempotent
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		ch := k[i]
		alnum := (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
		if !alnum && (i == 0 || (ch != '.' && ch != '-' && ch != '_')) {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		return fmt.Sprintf("%016x", time.Now().UnixNano())
	}
	return hex.EncodeToString(b[:])
}

// Track returns the normalized tracking of one shipment. Idempotent: retried on UNAVAILABLE.
func (c *Client) Track(ctx context.Context, r *shipgatev1.TrackRequest, opts ...CallOption) (*shipgatev1.TrackResponse, error) {
	resp := &shipgatev1.TrackResponse{}
	if err := c.Call(ctx, MethodTrack, r, resp, opts...); err != nil {
		return nil, err
	}
	return resp, nil
}

// GetOrder returns a provider's full order. Idempotent: retried on UNAVAILABLE.
func (c *Client) GetOrder(ctx context.Context, r *shipgatev1.GetOrderRequest, opts ...CallOption) (*shipgatev1.GetOrderResponse, error) {
	resp := &shipgatev1.GetOrderResponse{}
	if err := c.Call(ctx, MethodGetOrder, r, resp, opts...); err != nil {
		return nil, err
	}
	return resp, nil
}

// CreateOrder creates an order. It requires WithIdempotencyKey: without one it fails with
// INVALID_ARGUMENT / CLIENT_INVALID_ARGUMENT and sends nothing. The key is sent unchanged in
// every attempt; a retry happens only when nothing was sent or the gateway answered
// UNAVAILABLE. Once the request went out, a broken connection or a timeout ends the call with
// UNKNOWN / OUTCOME_UNKNOWN (Local): the gateway may have created the order, so check with the
// provider before trying again.
func (c *Client) CreateOrder(ctx context.Context, r *shipgatev1.CreateOrderRequest, opts ...CallOption) (*shipgatev1.CreateOrderResponse, error) {
	var co callOptions
	for _, o := range opts {
		o(&co)
	}
	if co.idempotencyKey == "" {
		e := localError(InvalidArgument, ReasonClientInvalidArgument, false, nil,
			"CreateOrder needs an idempotency key (shipgate.WithIdempotencyKey)")
		if co.info != nil {
			*co.info = CallInfo{}
		}
		return nil, e
	}
	resp := &shipgatev1.CreateOrderResponse{}
	if err := c.Call(ctx, MethodCreateOrder, r, resp, opts...); err != nil {
		return nil, err
	}
	return resp, nil
}

// Health returns the gateway's health. r may be nil. Idempotent: retried on UNAVAILABLE.
func (c *Client) Health(ctx context.Context, r *shipgatev1.HealthRequest, opts ...CallOption) (*shipgatev1.HealthResponse, error) {
	if r == nil {
		r = &shipgatev1.HealthRequest{}
	}
	resp := &shipgatev1.HealthResponse{}
	if err := c.Call(ctx, MethodHealth, r, resp, opts...); err != nil {
		return nil, err
	}
	return resp, nil
}

// Call calls method with r and decodes the response into resp.
//
// method is "/shipgate.v1.Shipgate/Track", "shipgate.v1.Shipgate.Track" or "Track" for the
// methods of the contract (r and resp must then be its request and response types), or any
// other "/package.Service/Method" name, passed through as is (and retried like CreateOrder). Call does not insist on an idempotency key for CreateOrder: the gateway
// refuses the call (INVALID_ARGUMENT / IDEMPOTENCY_KEY_INVALID).
//
// It returns nil on OK, else an *Error.
func (c *Client) Call(ctx context.Context, method string, r, resp proto.Message, opts ...CallOption) error {
	var co callOptions
	for _, o := range opts {
		o(&co)
	}
	st := &call{c: c, ctx: ctx, co: co}
	err := st.run(method, r, resp)
	if co.info != nil {
		*co.info = CallInfo{RequestID: st.env.GetRequestId(), Attempts: st.attempts, Address: st.addr}
	}
	if err != nil {
		err.Attempts = st.attempts
		err.RequestID = st.env.GetRequestId()
		return err
	}
	return nil
}

// ------------------------------------------------------------------ one call

type call struct {
	c        *Client
	ctx      context.Context
	co       callOptions
	env      *shipgatev1.RpcRequest
	kind     callKind // idempotent, keyed or other: what the retry rule sees
	deadline time.Time
	attempts int
	addr     string
	last     *Error // the failure of the previous attempt
}

func invalid(format string, args ...interface{}) *Error {
	return localError(InvalidArgument, ReasonClientInvalidArgument, false, nil, format, args...)
}

func (st *call) run(method string, r, resp proto.Message) *Error {
	c := st.c
	if st.ctx == nil {
		st.ctx = context.Background()
	}
	// the budget starts now
	st.deadline = time.Now().Add(c.opts.DefaultDeadline)
	if d, ok := st.ctx.Deadline(); ok {
		st.deadline = d
	}
	st.env = &shipgatev1.RpcRequest{RequestId: st.co.requestID}
	if st.env.RequestId == "" {
		st.env.RequestId = newRequestID()
	}

	if method == "" {
		return invalid("no method given")
	}
	if r == nil || resp == nil {
		return invalid("%s: nil request or response message", method)
	}
	if m, ok := lookupMethod(method); ok {
		in := string(r.ProtoReflect().Descriptor().FullName())
		out := string(resp.ProtoReflect().Descriptor().FullName())
		if in != m.input || out != m.output {
			return invalid("%s takes %s and returns %s, not %s / %s", m.full, m.input, m.output, in, out)
		}
		st.env.Method = m.full
		if m.idempotent {
			st.kind = kindIdempotent
		} else {
			st.kind = kindOther
		}
	} else if i := strings.Index(method[1:], "/"); method[0] == '/' && i > 0 && !strings.HasSuffix(method, "/") {
		st.env.Method = method // a method this client does not know
		st.kind = kindOther
	} else {
		return invalid("unknown method %q", method)
	}
	if st.co.idempotencyKey != "" {
		st.env.IdempotencyKey = st.co.idempotencyKey
		if st.kind == kindOther {
			st.kind = kindKeyed // the gateway deduplicates by the key
		}
	}
	for k, v := range st.co.metadata {
		if !validKey(k) {
			return invalid("metadata key %q is not lower-case [a-z0-9._-]", k)
		}
		if st.env.Metadata == nil {
			st.env.Metadata = map[string]string{}
		}
		st.env.Metadata[k] = v
	}
	maxAttempts := c.opts.MaxAttempts
	if st.co.maxAttempts < 0 {
		return invalid("negative max attempts")
	} else if st.co.maxAttempts > 0 {
		maxAttempts = st.co.maxAttempts
	}
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return invalid("encoding %s: %v", r.ProtoReflect().Descriptor().FullName(), err)
	}
	st.env.Payload = payload

	for {
		body, e, neverSent := st.attempt()
		st.last = e
		if e == nil {
			if err := proto.Unmarshal(body, resp); err != nil {
				return localError(Internal, ReasonClientBadReply, false, err,
					"reply payload from %s is not a %s: %v", st.addr,
					resp.ProtoReflect().Descriptor().FullName(), err)
			}
			return nil
		}
		if !st.retry(e, neverSent, maxAttempts) {
			return e
		}
	}
}

// cancelled returns the error for a call its context or the client's Close ended, or nil.
func (st *call) cancelled() *Error {
	select {
	case <-st.c.done:
		return localError(Cancelled, ReasonClientCancelled, false, nil, "client closed")
	default:
	}
	if err := st.ctx.Err(); errors.Is(err, context.Canceled) {
		return localError(Cancelled, ReasonClientCancelled, false, err, "call cancelled: %v", err)
	}
	return nil
}

// retry decides, after a failed attempt, whether to try again, by the policy's rule
// (policyDecide); when so it sleeps the backoff first and returns true. neverSent: the request
// provably did not leave the client. A failure whose outcome is unknown replaces *e.
func (st *call) retry(e *Error, neverSent bool, maxAttempts int) bool {
	c := st.c
	switch policyDecide(st.kind, !neverSent, e.Local, e.Code, e.Reason) {
	case decideRetry:
	case decideOutcomeUnknown:
		*e = *localError(Unknown, ReasonOutcomeUnknown, false, e.cause,
			"%s went out and no answer came back: %s (%s); the gateway may have acted on it, "+
				"so it is not retried (check with the provider before trying again)",
			st.env.Method, e.Message, e.Reason)
		return false
	default:
		return false
	}
	if st.attempts >= maxAttempts {
		return false
	}
	delay := c.backoff(st.attempts)
	if e.RetryAfter > delay {
		delay = e.RetryAfter
	}
	if delay >= time.Until(st.deadline) {
		return false // no budget left for another attempt: report this one
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-st.ctx.Done():
	case <-c.done:
	}
	if ce := st.cancelled(); ce != nil {
		*e = *ce
	}
	return false
}

// attempt makes one attempt: encodes the envelope with the budget left, sends it on a fresh
// context of the next endpoint and waits for the reply. It returns the reply's payload, or the
// failure and whether the request provably never left the client.
func (st *call) attempt() ([]byte, *Error, bool) {
	c := st.c
	if e := st.cancelled(); e != nil {
		return nil, e, true
	}
	now := time.Now()
	remaining := st.deadline.Sub(now)
	budget := remaining
	if c.opts.AttemptTimeout > 0 && c.opts.AttemptTimeout < budget {
		budget = c.opts.AttemptTimeout
	}
	if budget.Milliseconds() < 1 {
		var e *Error
		if st.attempts == 0 {
			e = localError(DeadlineExceeded, ReasonClientDeadlineExpired, false, st.ctx.Err(),
				"deadline expired before the request was sent")
		} else if st.last != nil && st.last.Reason == ReasonTransportNotConnected {
			e = localError(DeadlineExceeded, ReasonTransportNotConnected, false, st.ctx.Err(),
				"no connection to the gateway within the deadline (%d attempts)", st.attempts)
		} else {
			e = localError(DeadlineExceeded, ReasonTransportTimeout, false, st.ctx.Err(),
				"deadline expired after %d attempts", st.attempts)
		}
		return nil, e, true // this attempt sent nothing
	}
	// the gateway is told a little less than the attempt waits, so that its own answer (its
	// DEADLINE_EXCEEDED says what happened upstream) comes before this attempt's timer
	st.env.DeadlineMs = policySentDeadlineMs(budget.Milliseconds())
	data, err := proto.Marshal(st.env)
	if err != nil {
		return nil, invalid("encoding the envelope: %v", err), true
	}
	ep := c.pick()
	st.addr = ep.addr
	st.attempts++
	attemptEnd := now.Add(budget)

	mctx, err := ep.sock.OpenContext()
	if err != nil {
		if e := st.cancelled(); e != nil {
			return nil, e, true
		}
		return nil, localError(Unavailable, ReasonTransportError, true, err,
			"%s: cannot open a context: %v", ep.addr, err), true
	}
	defer mctx.Close()

	// ctx cancellation and Close interrupt the socket operations by closing the context
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-st.ctx.Done():
			_ = mctx.Close()
		case <-c.done:
			_ = mctx.Close()
		case <-stop:
		}
	}()

	sendWait := c.opts.ConnectTimeout
	if budget < sendWait {
		sendWait = budget
	}
	_ = mctx.SetOption(mangos.OptionRetryTime, time.Duration(0))
	_ = mctx.SetOption(mangos.OptionSendDeadline, sendWait)
	msg := mangos.NewMessage(len(data))
	msg.Body = append(msg.Body, data...)
	if err := mctx.SendMsg(msg); err != nil {
		msg.Free()
		if e := st.cancelled(); e != nil {
			return nil, e, true
		}
		left := st.deadline.Sub(time.Now())
		switch {
		case err == mangos.ErrSendTimeout || (err == mangos.ErrClosed && st.ctx.Err() != nil):
			// DEADLINE_EXCEEDED when the deadline, not ConnectTimeout, ended the wait
			if left <= 0 || sendWait >= remaining || st.ctx.Err() != nil {
				return nil, localError(DeadlineExceeded, ReasonTransportNotConnected, false, err,
					"no connection to %s within the deadline", ep.addr), true
			}
			return nil, localError(Unavailable, ReasonTransportNotConnected, true, err,
				"no connection to %s within %v", ep.addr, sendWait), true
		default:
			return nil, localError(Unavailable, ReasonTransportError, true, err,
				"sending to %s: %v", ep.addr, err), true
		}
	}

	wait := time.Until(attemptEnd)
	if wait < time.Millisecond {
		wait = time.Millisecond
	}
	_ = mctx.SetOption(mangos.OptionRecvDeadline, wait)
	rep, err := mctx.RecvMsg()
	if err != nil {
		if e := st.cancelled(); e != nil {
			return nil, e, false
		}
		switch {
		case err == mangos.ErrRecvTimeout || (err == mangos.ErrClosed && st.ctx.Err() != nil):
			return nil, localError(DeadlineExceeded, ReasonTransportTimeout, false, err,
				"no reply from %s within %d ms", ep.addr, budget.Milliseconds()), false
		case err == mangos.ErrCanceled || err == mangos.ErrProtoState:
			// resend off: mangos drops the request when its connection goes away
			return nil, localError(Unavailable, ReasonTransportConnectionLost, true, err,
				"connection to %s lost while waiting for the reply (peer closed it, or the "+
					"reply exceeded MaxReplySize)", ep.addr), false
		default:
			return nil, localError(Unavailable, ReasonTransportError, true, err,
				"receiving from %s: %v", ep.addr, err), false
		}
	}
	body, e, neverSent := st.decode(ep, rep.Body) // copies what it keeps
	rep.Free()
	return body, e, neverSent
}

// decode reads a received RpcReply: the payload on OK, else the status as an *Error.
func (st *call) decode(ep *endpoint, body []byte) ([]byte, *Error, bool) {
	if len(body) > st.c.opts.MaxReplySize {
		return nil, localError(ResourceExhausted, ReasonTransportReplyTooLarge, false, nil,
			"reply of %d bytes from %s exceeds MaxReplySize %d", len(body), ep.addr,
			st.c.opts.MaxReplySize), false
	}
	var rep shipgatev1.RpcReply
	if err := proto.Unmarshal(body, &rep); err != nil || rep.Status == nil {
		return nil, localError(Internal, ReasonClientBadReply, false, err,
			"reply from %s is not a shipgate.v1.RpcReply with a status", ep.addr), false
	}
	if rep.RequestId != "" && rep.RequestId != st.env.RequestId {
		return nil, localError(Internal, ReasonClientBadReply, false, nil,
			"reply from %s answers request %.64q, not %q", ep.addr, rep.RequestId,
			st.env.RequestId), false
	}
	if rep.Status.Code == shipgatev1.Code_OK {
		return rep.Payload, nil, false
	}
	return nil, statusError(rep.Status), false
}
