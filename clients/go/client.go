// Package shipgate is the Go client of the shipgate gateway.
//
// A call sends one shipgate.v1.RpcRequest (rpc.proto) on an SP REQ socket (mangos v3, the pure
// Go implementation of nng's protocols) and waits for one RpcReply. The messages of the
// contract are generated into the subpackage shipgatev1. On top of a bare REQ socket the client
// adds what the C client (include/shipgate/client.h) adds, with the same rules:
//
//   - Several gateways. Each address (tcp://, ipc:// or tls+tcp://) gets its own REQ socket
//     with one dialer, and attempts go round-robin over the addresses, preferring ones
//     connected now. One socket per address (rather than one socket dialing all) makes the
//     spread deterministic and tells which connection a request went out on.
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
//     connection then broke, or whose gateway did not answer in time, ends with UNKNOWN /
//     OUTCOME_UNKNOWN, since the gateway may still be working on it, unless it went to a
//     gateway of a fleet (below). The gateway's retry_after_ms, when given, lengthens the
//     backoff.
//   - Fleets (client_policy.json, fleet). Before a keyed call (one with an idempotency key, not
//     idempotent) is sent on a connection, the client asks Health on that connection, once per
//     connection (again after a drop or a restart: mangos's Attaching pipe event tells a new
//     one): its fleet is fleet_id when idempotency_scope is "fleet", else none. A Health that
//     gets no answer is the attempt's failure, the request not sent. A keyed request that went
//     out to a fleet's gateway and got no answer is retried, on the next address, and only
//     where Health reports the same fleet (those gateways share the key: the other one waits
//     for the first one's outcome and replays it); an address of another fleet, or of none,
//     ends the call UNKNOWN / OUTCOME_UNKNOWN without sending. From then on a final failure
//     that does not settle the call (a local one, or a gateway code in unsettled_codes) is
//     reported as UNKNOWN / OUTCOME_UNKNOWN too. Idempotent calls and calls without a key
//     never ask.
//   - Concurrency. Every attempt has its own socket context (OpenContext), so any number of
//     calls may run at once on one Client, from any goroutines.
//   - Capped replies. OptionMaxRecvSize is set on every socket before it dials, and the client
//     checks the size again itself.
//   - TLS (tls.go). A tls+tcp:// address is dialed with mangos's tlstcp transport, with the
//     tls.Config built from Options.TLS (OptionTLSConfig): the gateway's certificate is always
//     verified against the CA, and its name too; a client certificate when one is given (mTLS).
//
// Every failure is an *Error (see errors.go for the reasons the client makes itself).
package shipgate

import (
	"context"
	crand "crypto/rand"
	"crypto/tls"
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
	_ "go.nanomsg.org/mangos/v3/transport/tlstcp"

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
	// Gateway addresses: "tcp://host:port", "ipc:///path" or "tls+tcp://host:port" (TLS,
	// below). Empty: DefaultAddress.
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
	// TLS of the tls+tcp:// addresses: the CA to verify the gateway with (required for them),
	// a client certificate, the server name (tls.go).
	TLS TLSOptions
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
// gateway answered UNAVAILABLE is retried, and one that got no answer from a gateway of a fleet
// is retried on another gateway of that fleet (see the package comment).
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
	Attempts  int    // attempts sent or tried (a keyed call's Health probe is part of its attempt)
	Address   string // the address of the last attempt; "" when none was made
}

// WithCallInfo fills *info when the call returns.
func WithCallInfo(info *CallInfo) CallOption {
	return func(o *callOptions) { o.info = info }
}

// ------------------------------------------------------------------ endpoints

// endpoint is one gateway address: a REQ socket with one dialer. A dialer keeps at most one
// connection (pipe): mangos dials the next one only once the last one is gone from the socket.
type endpoint struct {
	addr string
	sock mangos.Socket
	tls  bool // a tls+tcp:// address

	// attach orders the send of a keyed request against a new connection. The request holds it
	// (read) from checking which connection it goes out on until mangos has put it on a pipe;
	// the Attaching event of a new pipe takes it (write) before mangos may send anything on that
	// pipe. So a keyed request goes out on the connection whose fleet it checked, or not at all.
	attach sync.RWMutex

	mu   sync.Mutex
	live map[uint32]struct{} // pipes attached and not detached
	gone map[uint32]struct{} // pipes whose Detached event came before their Attached one
	conn *conn               // the newest connection (its Attaching event); nil before the first
}

// conn is one connection of an endpoint, and what the gateway's Health said on it about where
// it keeps its idempotency keys (client_policy.json, fleet). Guarded by endpoint.mu.
type conn struct {
	pipe  uint32 // the mangos pipe's id
	dead  bool   // detached, or found gone by a send
	known bool   // Health answered on this connection
	fleet string // its fleet: fleet_id when the scope is "fleet", else "" (none)
	about string // what Health said, for messages
}

// hook follows the endpoint's connections. mangos reports Detached from its own goroutine, so
// it may arrive before Attached for a pipe that closed at once; Attaching comes first, from the
// dialing goroutine, before the pipe can carry a request.
func (ep *endpoint) hook(ev mangos.PipeEvent, p mangos.Pipe) {
	id := p.ID()
	if ev == mangos.PipeEventAttaching {
		ep.attach.Lock() // no keyed request is being put on a pipe now
		ep.mu.Lock()
		ep.conn = &conn{pipe: id} // a new connection: its fleet is not known
		ep.mu.Unlock()
		ep.attach.Unlock()
		return
	}
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
		// ids are unique until Detached has run, so this is the connection's own event
		if ep.conn != nil && ep.conn.pipe == id {
			ep.conn.dead = true
		}
	}
}

func (ep *endpoint) up() bool {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return len(ep.live) > 0
}

// ready returns the connection a keyed request may go out on now, and a copy of it: the
// newest, alive, with its fleet known. nil: Health must be asked first.
func (ep *endpoint) ready() (*conn, conn) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if cn := ep.conn; cn != nil && cn.known && !cn.dead {
		return cn, *cn
	}
	return nil, conn{}
}

// learned records what Health, answered on pipe, said. Only the newest connection takes it: an
// answer on a connection replaced since says nothing about the next one.
func (ep *endpoint) learned(pipe uint32, fleet, about string) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if cn := ep.conn; cn != nil && cn.pipe == pipe && !cn.dead {
		cn.known, cn.fleet, cn.about = true, fleet, about
	}
}

// lost marks cn gone (a send found no pipe to go out on).
func (ep *endpoint) lost(cn *conn) {
	ep.mu.Lock()
	cn.dead = true
	ep.mu.Unlock()
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
// only on bad options (among them a tls+tcp:// address without a CA, a client certificate
// without its key, or TLS files that do not load) or an address whose transport is unknown or
// malformed.
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
	tlsBase, err := o.TLS.config(o.Addresses)
	if err != nil {
		return nil, err
	}
	c := &Client{
		opts: o,
		done: make(chan struct{}),
		rnd:  rand.New(rand.NewSource(time.Now().UnixNano())),
	}
	for _, addr := range o.Addresses {
		ep, err := c.open(addr, tlsBase)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.eps = append(c.eps, ep)
	}
	return c, nil
}

// open makes the endpoint of addr; tlsBase is the TLS configuration of tls+tcp:// addresses
// (Options.TLS.config), nil when there are none.
func (c *Client) open(addr string, tlsBase *tls.Config) (*endpoint, error) {
	dialOpts := map[string]interface{}{mangos.OptionDialAsynch: true}
	isTLS := strings.HasPrefix(addr, tlsScheme)
	switch {
	case isTLS:
		cfg, err := dialerTLS(tlsBase, addr, c.opts.TLS.ServerName)
		if err != nil {
			return nil, err
		}
		dialOpts[mangos.OptionTLSConfig] = cfg
	case strings.HasPrefix(addr, "tcp://"), strings.HasPrefix(addr, "ipc://"):
	default:
		return nil, fmt.Errorf("shipgate: address %q: only tcp://, ipc:// and tls+tcp:// are supported", addr)
	}
	sock, err := req.NewSocket()
	if err != nil {
		return nil, fmt.Errorf("shipgate: %s: %w", addr, err)
	}
	ep := &endpoint{addr: addr, sock: sock, tls: isTLS, live: map[uint32]struct{}{}, gone: map[uint32]struct{}{}}
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
	if err := sock.DialOptions(addr, dialOpts); err != nil {
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
// INVALID_ARGUMENT / CLIENT_INVALID_ARGUMENT and sends nothing. Before it is sent on a
// connection, the client asks that connection's Health which fleet the gateway is of (once per
// connection). The key is sent unchanged in every attempt; a retry happens when nothing was
// sent, when the gateway answered UNAVAILABLE, or when the request went to a gateway of a fleet
// and got no answer (then only to gateways of that fleet). Otherwise, once the request went
// out, a broken connection or a timeout ends the call with UNKNOWN / OUTCOME_UNKNOWN (Local):
// the gateway may have created the order, so check with the provider before trying again.
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

	// keyed calls (client_policy.json, fleet)
	unsettled bool     // an attempt may have been sent and no answer came back
	lostAt    []string // those attempts: "address (what its Health said; the reason)"
	fleet     string   // set once such an attempt went to a fleet: later attempts go only there
}

// outcome is what one attempt ended with.
type outcome struct {
	payload   []byte
	err       *Error
	neverSent bool   // the request provably did not leave the client
	final     bool   // err ends the call as it is: no retry, no conversion
	fleet     string // keyed: the fleet of the connection the request went out on; "" none
	about     string // keyed: what that connection's Health said
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
		o := st.attempt()
		e := o.err
		st.last = e
		if e == nil {
			if err := proto.Unmarshal(o.payload, resp); err != nil {
				return st.settle(localError(Internal, ReasonClientBadReply, false, err,
					"reply payload from %s is not a %s: %v", st.addr,
					resp.ProtoReflect().Descriptor().FullName(), err))
			}
			return nil
		}
		if o.final {
			return e
		}
		if st.kind == kindKeyed && !o.neverSent && e.Local && lostReason(e.Reason) {
			// it may have reached the gateway: from now on the call is settled only by a
			// gateway's answer (fleet.unsettled_codes), and it may move on only within its fleet
			st.unsettled = true
			st.lostAt = append(st.lostAt, fmt.Sprintf("%s (%s; %s)", st.addr, o.about, e.Reason))
			if o.fleet != "" {
				st.fleet = o.fleet
			}
		}
		if !st.retry(e, o, maxAttempts) {
			return st.settle(e)
		}
	}
}

// lostReason: the local reasons after which a request that went out may have been acted on.
func lostReason(reason string) bool {
	return reason == ReasonTransportConnectionLost || reason == ReasonTransportError ||
		reason == ReasonTransportTimeout
}

// settle applies the fleet section's unsettled conversion to the final failure of a call: once
// an attempt of a keyed call may have been sent and got no answer, a later failure that does
// not settle it (local, or a gateway code in unsettled_codes) is UNKNOWN / OUTCOME_UNKNOWN.
func (st *call) settle(e *Error) *Error {
	if !st.unsettled || (e.Local && e.Reason == ReasonOutcomeUnknown) || !policyUnsettled(e.Local, e.Code) {
		return e
	}
	from := "the gateway's"
	if e.Local {
		from = "the client's"
	}
	return localError(Unknown, ReasonOutcomeUnknown, false, e.cause,
		"%s may have been acted on: it went out to %s and no answer came back; the last "+
			"attempt, at %s, ended with %s %s (%s): %s (check with the provider before trying again)",
		st.env.Method, strings.Join(st.lostAt, ", "), st.addr, from, e.Code, e.Reason, e.Message)
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
// (policyDecide); when so it sleeps the backoff first and returns true. A failure whose
// outcome is unknown replaces *e.
func (st *call) retry(e *Error, o outcome, maxAttempts int) bool {
	c := st.c
	switch policyDecide(st.kind, !o.neverSent, e.Local, e.Code, e.Reason, o.fleet != "") {
	case decideRetry:
	case decideOutcomeUnknown:
		keys := ""
		if st.kind == kindKeyed {
			keys = fmt.Sprintf(" and its gateway keeps its idempotency keys to itself (%s)", o.about)
		}
		*e = *localError(Unknown, ReasonOutcomeUnknown, false, e.cause,
			"%s went out to %s and no answer came back: %s (%s)%s; the gateway may have acted "+
				"on it, so it is not retried (check with the provider before trying again)",
			st.env.Method, st.addr, e.Message, e.Reason, keys)
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

// attempt makes one attempt on the next endpoint: a keyed call first learns the fleet of the
// connection (keyed); the envelope is encoded with the budget left and sent on a fresh context,
// and the reply awaited.
func (st *call) attempt() outcome {
	c := st.c
	if e := st.cancelled(); e != nil {
		return outcome{err: e, neverSent: true}
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
		return outcome{err: e, neverSent: true} // this attempt sent nothing
	}
	ep := c.pick()
	st.addr = ep.addr
	st.attempts++
	end := now.Add(budget)
	if st.kind == kindKeyed {
		return st.keyed(ep, end)
	}
	r := st.send(ep, end, budget, nil)
	return outcome{payload: r.payload, err: r.err, neverSent: r.neverSent}
}

// maxProbes bounds the times one attempt asks Health: more than once only when its connection
// is replaced in between.
const maxProbes = 3

// keyed is the attempt of a keyed call on ep (client_policy.json, fleet): the request goes out
// only on a connection whose fleet is known, asked with Health first when it is not; after a
// failover, only where that fleet is the call's.
func (st *call) keyed(ep *endpoint, end time.Time) outcome {
	for probes := 0; ; {
		if e := st.cancelled(); e != nil {
			return outcome{err: e, neverSent: true}
		}
		cn, info := ep.ready()
		if cn == nil {
			if probes == maxProbes {
				return outcome{neverSent: true, err: localError(Unavailable, ReasonTransportNotConnected, true, nil,
					"the connection to %s kept changing while its Health was asked; %s was not sent",
					ep.addr, st.env.Method)}
			}
			probes++
			if e := st.probe(ep, end); e != nil {
				return outcome{err: e, neverSent: true}
			}
			continue
		}
		if st.fleet != "" && info.fleet != st.fleet {
			return outcome{neverSent: true, final: true, err: localError(Unknown, ReasonOutcomeUnknown, false, nil,
				"%s went out to %s and no answer came back; it may move on only within fleet %q, "+
					"and %s is not of it (%s), so it is not sent there: the outcome is unknown "+
					"(check with the provider before trying again)",
				st.env.Method, strings.Join(st.lostAt, ", "), st.fleet, ep.addr, info.about)}
		}
		budget := time.Until(end)
		if budget.Milliseconds() < 1 {
			return outcome{neverSent: true, err: localError(DeadlineExceeded, ReasonTransportTimeout, false,
				st.ctx.Err(), "no budget left for %s after asking the Health of %s; it was not sent",
				st.env.Method, ep.addr)}
		}
		r := st.send(ep, end, budget, cn)
		if r.replaced {
			continue // its connection went away before the send: the next one is asked first
		}
		return outcome{payload: r.payload, err: r.err, neverSent: r.neverSent, fleet: info.fleet, about: info.about}
	}
}

// probe asks ep's gateway for its Health and records the fleet of the connection that answered:
// fleet_id when idempotency_scope is "fleet" (and fleet_id is set), else none; an error status or
// an undecodable reply is none too. It returns the failure when no answer came (the attempt's
// failure, its request not sent). It waits no longer than end.
func (st *call) probe(ep *endpoint, end time.Time) *Error {
	budget := time.Until(end)
	if budget.Milliseconds() < 1 {
		return localError(DeadlineExceeded, ReasonTransportTimeout, false, st.ctx.Err(),
			"no budget left to ask the Health of %s before %s; it was not sent", ep.addr, st.env.Method)
	}
	env := &shipgatev1.RpcRequest{
		RequestId:  newRequestID(),
		Method:     MethodHealth,
		DeadlineMs: policySentDeadlineMs(budget.Milliseconds()),
	}
	data, err := proto.Marshal(env)
	if err != nil {
		return invalid("encoding the Health request: %v", err)
	}
	r := st.exchange(ep, data, env.RequestId, end, budget, nil)
	if !r.answered {
		e := r.err
		if e.Code != Cancelled {
			e.Message = fmt.Sprintf("asking the Health of %s before %s (not sent): %s", ep.addr,
				st.env.Method, e.Message)
		}
		return e
	}
	var h shipgatev1.HealthResponse
	fleet, about := "", ""
	switch {
	case r.err != nil:
		about = fmt.Sprintf("its Health answered %s %s: no fleet", r.err.Code, r.err.Reason)
	case proto.Unmarshal(r.payload, &h) != nil:
		about = "its Health reply does not decode: no fleet"
	case h.GetIdempotencyScope() == "fleet" && h.GetFleetId() != "":
		fleet = h.GetFleetId()
		about = fmt.Sprintf("fleet %q", fleet)
	default:
		about = fmt.Sprintf("idempotency scope %q: no fleet", h.GetIdempotencyScope())
	}
	ep.learned(r.pipe, fleet, about)
	return nil
}

// send encodes the call's envelope for an attempt of the given budget (ending at end) and
// exchanges it on ep.
func (st *call) send(ep *endpoint, end time.Time, budget time.Duration, guard *conn) reply {
	// the gateway is told a little less than the attempt waits, so that its own answer (its
	// DEADLINE_EXCEEDED says what happened upstream) comes before this attempt's timer
	st.env.DeadlineMs = policySentDeadlineMs(budget.Milliseconds())
	data, err := proto.Marshal(st.env)
	if err != nil {
		return reply{err: invalid("encoding the envelope: %v", err), neverSent: true}
	}
	return st.exchange(ep, data, st.env.RequestId, end, budget, guard)
}

// reply is what one exchange ended with.
type reply struct {
	payload   []byte // the reply's payload, on OK
	err       *Error
	neverSent bool   // the request provably did not leave the client
	answered  bool   // a reply came back (err, if any, says what was wrong with it)
	pipe      uint32 // the connection the reply came on
	replaced  bool   // guard was gone before the send: nothing was sent
}

// exchange sends data (an RpcRequest whose request_id is id) on a fresh context of ep and waits
// for the reply until end (budget: the wait, for messages). With guard (a keyed request), the
// request goes out on that connection or not at all (replaced).
func (st *call) exchange(ep *endpoint, data []byte, id string, end time.Time, budget time.Duration, guard *conn) reply {
	c := st.c
	remaining := time.Until(st.deadline)
	mctx, err := ep.sock.OpenContext()
	if err != nil {
		if e := st.cancelled(); e != nil {
			return reply{err: e, neverSent: true}
		}
		return reply{neverSent: true, err: localError(Unavailable, ReasonTransportError, true, err,
			"%s: cannot open a context: %v", ep.addr, err)}
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
	if left := time.Until(end); left < sendWait {
		sendWait = left
	}
	_ = mctx.SetOption(mangos.OptionRetryTime, time.Duration(0))
	_ = mctx.SetOption(mangos.OptionSendDeadline, sendWait)
	msg := mangos.NewMessage(len(data))
	msg.Body = append(msg.Body, data...)
	if guard != nil {
		// no new connection can attach while this is held; the one there is guard's (one
		// dialer), or none: then the send fails at once (FailNoPeers) instead of waiting for
		// the next connection, whose fleet is not known
		ep.attach.RLock()
		ep.mu.Lock()
		same := ep.conn == guard && !guard.dead
		ep.mu.Unlock()
		if !same {
			ep.attach.RUnlock()
			msg.Free()
			return reply{replaced: true, neverSent: true}
		}
		_ = mctx.SetOption(mangos.OptionFailNoPeers, true)
		err = mctx.SendMsg(msg)
		ep.attach.RUnlock()
		_ = mctx.SetOption(mangos.OptionFailNoPeers, false)
		if err == mangos.ErrNoPeers {
			msg.Free()
			if e := st.cancelled(); e != nil {
				return reply{err: e, neverSent: true}
			}
			ep.lost(guard)
			return reply{replaced: true, neverSent: true}
		}
	} else {
		err = mctx.SendMsg(msg)
	}
	if err != nil {
		msg.Free()
		if e := st.cancelled(); e != nil {
			return reply{err: e, neverSent: true}
		}
		left := time.Until(st.deadline)
		switch {
		case err == mangos.ErrSendTimeout || (err == mangos.ErrClosed && st.ctx.Err() != nil):
			// DEADLINE_EXCEEDED when the deadline, not ConnectTimeout, ended the wait
			if left <= 0 || sendWait >= remaining || st.ctx.Err() != nil {
				return reply{neverSent: true, err: localError(DeadlineExceeded, ReasonTransportNotConnected, false, err,
					"no connection to %s within the deadline%s", ep.addr, ep.tlsHint())}
			}
			return reply{neverSent: true, err: localError(Unavailable, ReasonTransportNotConnected, true, err,
				"no connection to %s within %v%s", ep.addr, sendWait, ep.tlsHint())}
		default:
			return reply{neverSent: true, err: localError(Unavailable, ReasonTransportError, true, err,
				"sending to %s: %v", ep.addr, err)}
		}
	}

	wait := time.Until(end)
	if wait < time.Millisecond {
		wait = time.Millisecond
	}
	_ = mctx.SetOption(mangos.OptionRecvDeadline, wait)
	rep, err := mctx.RecvMsg()
	if err != nil {
		if e := st.cancelled(); e != nil {
			return reply{err: e}
		}
		switch {
		case err == mangos.ErrRecvTimeout || (err == mangos.ErrClosed && st.ctx.Err() != nil):
			return reply{err: localError(DeadlineExceeded, ReasonTransportTimeout, false, err,
				"no reply from %s within %d ms", ep.addr, budget.Milliseconds())}
		case err == mangos.ErrCanceled || err == mangos.ErrProtoState || err == mangos.ErrNoPeers:
			// resend off: mangos drops the request when its connection goes away
			return reply{err: localError(Unavailable, ReasonTransportConnectionLost, true, err,
				"connection to %s lost while waiting for the reply (peer closed it, or the "+
					"reply exceeded MaxReplySize)", ep.addr)}
		default:
			return reply{err: localError(Unavailable, ReasonTransportError, true, err,
				"receiving from %s: %v", ep.addr, err)}
		}
	}
	r := reply{answered: true}
	if rep.Pipe != nil {
		r.pipe = rep.Pipe.ID()
	}
	r.payload, r.err = st.decode(ep, id, rep.Body) // copies what it keeps
	rep.Free()
	return r
}

// decode reads a received RpcReply (to the request id): the payload on OK, else the status as
// an *Error.
func (st *call) decode(ep *endpoint, id string, body []byte) ([]byte, *Error) {
	if len(body) > st.c.opts.MaxReplySize {
		return nil, localError(ResourceExhausted, ReasonTransportReplyTooLarge, false, nil,
			"reply of %d bytes from %s exceeds MaxReplySize %d", len(body), ep.addr,
			st.c.opts.MaxReplySize)
	}
	var rep shipgatev1.RpcReply
	if err := proto.Unmarshal(body, &rep); err != nil || rep.Status == nil {
		return nil, localError(Internal, ReasonClientBadReply, false, err,
			"reply from %s is not a shipgate.v1.RpcReply with a status", ep.addr)
	}
	if rep.RequestId != "" && rep.RequestId != id {
		return nil, localError(Internal, ReasonClientBadReply, false, nil,
			"reply from %s answers request %.64q, not %q", ep.addr, rep.RequestId, id)
	}
	if rep.Status.Code == shipgatev1.Code_OK {
		return rep.Payload, nil
	}
	return nil, statusError(rep.Status)
}
