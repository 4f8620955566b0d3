package shipgate_test

// The shared interop case list (tests/interop/cases.json, see tests/interop/README.md), run with
// the Go client against a live shipgated and shipgate-sandbox that this test starts on loopback
// and stops at the end.
//
// The binaries come from SHIPGATED and SHIPGATE_SANDBOX (CTest sets both); the list from
// SHIPGATE_INTEROP_CASES (default ../../tests/interop/cases.json). Without the binaries the test
// fails, unless run with -short.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	shipgate "shipgate.local/clients/go"
	pb "shipgate.local/clients/go/shipgatev1"
)

// ------------------------------------------------------------------ processes

// lockedBuffer collects a process's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type proc struct {
	name   string
	cmd    *exec.Cmd
	line   string // the readiness line
	stderr *lockedBuffer
	waited chan error
}

// startProc runs argv and waits (10s at most) for a stdout line starting with ready; the rest of
// stdout is drained so the process never blocks on it.
func startProc(argv []string, ready string) (*proc, error) {
	p := &proc{name: filepath.Base(argv[0]), cmd: exec.Command(argv[0], argv[1:]...),
		stderr: &lockedBuffer{}, waited: make(chan error, 1)}
	p.cmd.Stderr = p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(out)
		for {
			s, err := r.ReadString('\n')
			if strings.HasPrefix(s, ready) {
				lines <- strings.TrimSpace(s)
				_, _ = io.Copy(io.Discard, r)
				break
			}
			if err != nil {
				close(lines)
				break
			}
		}
		p.waited <- p.cmd.Wait()
	}()
	select {
	case line, isLine := <-lines:
		if isLine {
			p.line = line
			return p, nil
		}
	case <-time.After(10 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.waited
	return nil, fmt.Errorf("%s did not print %q; stderr:\n%s", p.name, ready, p.stderr.String())
}

// stop sends SIGTERM and waits (10s, then SIGKILL); returns the exit error.
func (p *proc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.waited:
		return err
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.waited
		return fmt.Errorf("%s ignored SIGTERM", p.name)
	}
}

// ------------------------------------------------------------------ the sandbox's HTTP side

var plainHTTP = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}

func sandboxReset(base string) error {
	resp, err := plainHTTP.Post(base+"/__sandbox/reset", "application/json", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reset: HTTP %d", resp.StatusCode)
	}
	return nil
}

// sandboxCount is how many recorded requests have a path starting with prefix.
func sandboxCount(base, prefix string) (int, error) {
	resp, err := plainHTTP.Get(base + "/__sandbox/requests")
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return -1, fmt.Errorf("requests: HTTP %d", resp.StatusCode)
	}
	var rec []struct {
		Path string `json:"path"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rec); err != nil {
		return -1, err
	}
	n := 0
	for _, r := range rec {
		if strings.HasPrefix(r.Path, prefix) {
			n++
		}
	}
	return n, nil
}

// ------------------------------------------------------------------ cases

type interopCase struct {
	Name           string          `json:"name"`
	Method         string          `json:"method"`
	RawMethod      string          `json:"raw_method"`
	Request        json.RawMessage `json:"request"`
	DeadlineMs     *int64          `json:"deadline_ms"`
	IdempotencyKey string          `json:"idempotency_key"`
	SandboxReset   bool            `json:"sandbox_reset"`
	MaxAttempts    int             `json:"max_attempts"`
	AttemptTimeout int             `json:"attempt_timeout_ms"`
	GatewayPaused  bool            `json:"gateway_paused"`
	Expect         struct {
		Code               string                     `json:"code"`
		Reason             *string                    `json:"reason"`
		Retryable          *bool                      `json:"retryable"`
		UpstreamHTTPStatus *int32                     `json:"upstream_http_status"`
		RetryAfterMs       *int64                     `json:"retry_after_ms"`
		Provider           *string                    `json:"provider"`
		Attempts           *int                       `json:"attempts"`
		Local              *bool                      `json:"local"`
		Violations         []string                   `json:"violations"`
		Fields             map[string]json.RawMessage `json:"fields"`
		SandboxRequests    *struct {
			Path  string `json:"path"`
			Count int    `json:"count"`
		} `json:"sandbox_requests"`
	} `json:"expect"`
}

// messages returns new request and response messages of a contract method.
func messages(method string) (proto.Message, proto.Message, bool) {
	switch method {
	case "Health":
		return &pb.HealthRequest{}, &pb.HealthResponse{}, true
	case "Track":
		return &pb.TrackRequest{}, &pb.TrackResponse{}, true
	case "GetOrder":
		return &pb.GetOrderRequest{}, &pb.GetOrderResponse{}, true
	case "CreateOrder":
		return &pb.CreateOrderRequest{}, &pb.CreateOrderResponse{}, true
	}
	return nil, nil, false
}

func decodeJSON(b []byte) (interface{}, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v interface{}
	err := d.Decode(&v)
	return v, err
}

// lookupPath walks a dotted path of proto field names ("tracking.events.0.status"); "x.#" is
// the length of array x. Returns nil when absent.
func lookupPath(v interface{}, path string) interface{} {
	for _, tok := range strings.Split(path, ".") {
		switch x := v.(type) {
		case []interface{}:
			if tok == "#" {
				return json.Number(strconv.Itoa(len(x)))
			}
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		case map[string]interface{}:
			v = x[tok]
		default:
			return nil
		}
	}
	return v
}

// same compares an actual value with an expected one: null means absent; numbers compare by
// value (int64 arrive as strings in proto3 JSON, doubles such as 102200 may print as 102200.0).
func same(got, want interface{}) bool {
	if want == nil {
		return got == nil
	}
	if w, isNum := want.(json.Number); isNum {
		wf, err := w.Float64()
		if err != nil {
			return false
		}
		var gs string
		switch g := got.(type) {
		case json.Number:
			gs = string(g)
		case string:
			gs = g
		default:
			return false
		}
		// integers (epoch seconds, int64 as strings) exactly; others within a relative 1e-12
		if wi, werr := strconv.ParseInt(string(w), 10, 64); werr == nil {
			if gi, gerr := strconv.ParseInt(gs, 10, 64); gerr == nil {
				return gi == wi
			}
		}
		gf, err := strconv.ParseFloat(gs, 64)
		return err == nil && math.Abs(gf-wf) <= 1e-12*math.Max(1, math.Abs(wf))
	}
	return reflect.DeepEqual(got, want)
}

func runCase(t *testing.T, c *shipgate.Client, gw *proc, addrs []string, sandbox string, cs *interopCase) {
	req, resp, known := messages(cs.Method)
	if !known {
		t.Fatalf("unknown method %q", cs.Method)
	}
	if err := protojson.Unmarshal(cs.Request, req); err != nil {
		t.Fatalf("bad request: %v", err)
	}
	if cs.SandboxReset {
		if err := sandboxReset(sandbox); err != nil {
			t.Fatal(err)
		}
	}
	deadline := int64(5000)
	if cs.DeadlineMs != nil {
		deadline = *cs.DeadlineMs
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(deadline)*time.Millisecond)
	defer cancel()
	var opts []shipgate.CallOption
	if cs.IdempotencyKey != "" {
		opts = append(opts, shipgate.WithIdempotencyKey(cs.IdempotencyKey))
	}
	if cs.MaxAttempts > 0 {
		opts = append(opts, shipgate.WithMaxAttempts(cs.MaxAttempts))
	}
	method := cs.Method
	if cs.RawMethod != "" {
		method = cs.RawMethod
	}
	if cs.AttemptTimeout > 0 { // a client of the case's own
		own, err := shipgate.New(shipgate.Options{Addresses: addrs,
			AttemptTimeout: time.Duration(cs.AttemptTimeout) * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer own.Close()
		for until := time.Now().Add(3 * time.Second); own.Connected() < 1 && time.Now().Before(until); {
			time.Sleep(10 * time.Millisecond)
		}
		c = own
	}
	if cs.GatewayPaused { // it takes requests and answers none
		if err := gw.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		waitStopped(t, gw.cmd.Process.Pid) // the signal is asynchronous
	}
	var info shipgate.CallInfo
	opts = append(opts, shipgate.WithCallInfo(&info))
	err := c.Call(ctx, method, req, resp, opts...)
	if cs.GatewayPaused {
		if cerr := gw.cmd.Process.Signal(syscall.SIGCONT); cerr != nil {
			t.Fatal(cerr)
		}
	}

	if got := shipgate.CodeOf(err); got.String() != cs.Expect.Code {
		t.Fatalf("code %s, want %s (error: %v)", got, cs.Expect.Code, err)
	}
	e, _ := shipgate.AsError(err)
	if e == nil {
		e = &shipgate.Error{}
	}
	if w := cs.Expect.Reason; w != nil && e.Reason != *w {
		t.Errorf("reason %q, want %q", e.Reason, *w)
	}
	if w := cs.Expect.Retryable; w != nil && e.Retryable != *w {
		t.Errorf("retryable %v, want %v", e.Retryable, *w)
	}
	if w := cs.Expect.UpstreamHTTPStatus; w != nil && e.UpstreamHTTPStatus != *w {
		t.Errorf("upstream_http_status %d, want %d", e.UpstreamHTTPStatus, *w)
	}
	if w := cs.Expect.RetryAfterMs; w != nil && e.RetryAfter != time.Duration(*w)*time.Millisecond {
		t.Errorf("retry_after %v, want %d ms", e.RetryAfter, *w)
	}
	if w := cs.Expect.Provider; w != nil && e.Provider != *w {
		t.Errorf("provider %q, want %q", e.Provider, *w)
	}
	if w := cs.Expect.Attempts; w != nil && info.Attempts != *w {
		t.Errorf("attempts %d, want %d (%v)", info.Attempts, *w, err)
	}
	if w := cs.Expect.Local; w != nil && e.Local != *w {
		t.Errorf("local %v, want %v", e.Local, *w)
	}
	for _, field := range cs.Expect.Violations {
		found := false
		for _, v := range e.Violations {
			found = found || v.Field == field
		}
		if !found {
			t.Errorf("no violation of %q among %+v", field, e.Violations)
		}
	}
	if len(cs.Expect.Fields) > 0 {
		if err != nil {
			t.Fatalf("fields expected, but the call failed: %v", err)
		}
		b, merr := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(resp)
		if merr != nil {
			t.Fatal(merr)
		}
		got, derr := decodeJSON(b)
		if derr != nil {
			t.Fatal(derr)
		}
		for path, raw := range cs.Expect.Fields {
			want, werr := decodeJSON(raw)
			if werr != nil {
				t.Fatalf("%s: bad expected value: %v", path, werr)
			}
			if g := lookupPath(got, path); !same(g, want) {
				gs := "absent"
				if g != nil {
					gb, _ := json.Marshal(g)
					gs = string(gb)
				}
				t.Errorf("%s is %s, want %s", path, gs, raw)
			}
		}
	}
	if sr := cs.Expect.SandboxRequests; sr != nil {
		n, err := sandboxCount(sandbox, sr.Path)
		if err != nil {
			t.Fatal(err)
		}
		if n != sr.Count {
			t.Errorf("sandbox saw %d requests under %s, want %d", n, sr.Path, sr.Count)
		}
	}
}

func TestInterop(t *testing.T) {
	t.Parallel() // its own processes, like the other interop tests
	gatewayBin, sandboxBin := os.Getenv("SHIPGATED"), os.Getenv("SHIPGATE_SANDBOX")
	if gatewayBin == "" || sandboxBin == "" {
		if testing.Short() {
			t.Skip("-short: SHIPGATED / SHIPGATE_SANDBOX not set")
		}
		t.Fatal("SHIPGATED and SHIPGATE_SANDBOX must name the shipgated and shipgate-sandbox " +
			"binaries (run with -short to skip the interop test)")
	}
	casesPath := os.Getenv("SHIPGATE_INTEROP_CASES")
	if casesPath == "" {
		casesPath = filepath.Join("..", "..", "tests", "interop", "cases.json")
	}
	raw, err := os.ReadFile(casesPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []json.RawMessage `json:"cases"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", casesPath, err)
	}
	if len(doc.Cases) == 0 {
		t.Fatalf("%s holds no cases", casesPath)
	}

	sb, err := startProc([]string{sandboxBin, "--listen", "127.0.0.1:0"}, "listening on ")
	if err != nil {
		t.Fatal(err)
	}
	sandbox := strings.TrimPrefix(sb.line, "listening on ")
	ipcAddr := "ipc://" + filepath.Join(t.TempDir(), "gw.sock")
	// a fresh state directory (the idempotency store): no keys from an earlier run
	args := []string{gatewayBin, "--quiet", "--listen", "tcp://127.0.0.1:0", "--listen", ipcAddr,
		"--set", "state_dir=" + t.TempDir()}
	for _, p := range []string{"boscod", "bosonline", "biteship", "fuuffy"} {
		args = append(args, "--set", p+".base_url="+sandbox+"/"+p)
	}
	gw, err := startProc(args, "shipgated ready on ")
	if err != nil {
		_ = sb.stop()
		t.Fatal(err)
	}
	defer func() {
		if err := gw.stop(); err != nil {
			t.Errorf("shipgated: %v; stderr:\n%s", err, gw.stderr.String())
		}
		if err := sb.stop(); err != nil {
			t.Errorf("shipgate-sandbox: %v; stderr:\n%s", err, sb.stderr.String())
		}
		if t.Failed() {
			t.Logf("shipgated stderr:\n%s", gw.stderr.String())
		}
	}()
	urls := strings.Fields(strings.TrimPrefix(gw.line, "shipgated ready on "))
	if len(urls) == 0 {
		t.Fatalf("no address in %q", gw.line)
	}

	c, err := shipgate.New(shipgate.Options{Addresses: urls[:1]})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	for i, rawCase := range doc.Cases {
		var cs interopCase
		if err := json.Unmarshal(rawCase, &cs); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		t.Run(cs.Name, func(t *testing.T) { runCase(t, c, gw, urls[:1], sandbox, &cs) })
	}
	t.Logf("%d interop cases run against %s", len(doc.Cases), urls[0])

	// Go only: the gateway's ipc listener, and round robin over its two listeners
	t.Run("go: round robin over tcp and ipc", func(t *testing.T) {
		if len(urls) < 2 || urls[1] != ipcAddr {
			t.Fatalf("gateway listens on %v, want %s second", urls, ipcAddr)
		}
		c2, err := shipgate.New(shipgate.Options{Addresses: urls[:2]})
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		seen := map[string]int{}
		for i := 0; i < 4; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			var info shipgate.CallInfo
			resp, err := c2.Health(ctx, nil, shipgate.WithCallInfo(&info))
			cancel()
			if err != nil || resp.GetStatus() != pb.HealthResponse_SERVING_STATUS_SERVING {
				t.Fatalf("health over %s: %v %v", info.Address, resp, err)
			}
			seen[info.Address]++
		}
		// the first call may go out before both connections are up; then it takes either
		if seen[urls[0]] < 1 || seen[ipcAddr] < 1 {
			t.Fatalf("spread %v", seen)
		}
	})
}

// waitStopped waits (at most 5 s) until pid is stopped: its /proc state reads "T". kill(2)
// returns before the stop takes effect, and a gateway that still runs answers the call.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	path := fmt.Sprintf("/proc/%d/stat", pid)
	for i := 0; i < 500; i++ {
		b, err := os.ReadFile(path)
		if err == nil {
			s := string(b)
			if j := strings.LastIndexByte(s, ')'); j >= 0 && j+2 < len(s) && (s[j+2] == 'T' || s[j+2] == 't') {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("gateway %d did not stop", pid)
}

// ------------------------------------------------------------------ two gateways, a kill -9, a fleet

// Go only, after the list: two gateways on one sandbox and a client given both addresses, the
// sandbox holding the POST of a CreateOrder whose form id is SLOW-<ms> (SLOW-1500: 1.5 s):
//   - a fleet (two gateways on one redis-server, scope "fleet"): the gateway that holds the POST
//     is killed (kill -9): the client moves to the other gateway, which waits for the key and
//     ends UNKNOWN / OUTCOME_UNKNOWN; one POST (TestInteropFleetKill);
//   - the same fleet, the first gateway's answer not reaching the client (an attempt timeout of
//     500 ms, or the connection cut): the other gateway waits for the first one's outcome and
//     replays it; one POST. A first gateway that keeps its deadline and can answer does, with
//     its own OUTCOME_UNKNOWN, and that settles the call (TestInteropFleetReplay);
//   - node stores (SQLite, a state directory each): the kill ends OUTCOME_UNKNOWN after one
//     attempt; one POST (TestInteropNodeKill).
// Each test starts its own processes, so they run in parallel.

// binaries returns the gateway and sandbox binaries, or skips (-short) or fails without them.
func binaries(t *testing.T) (string, string) {
	t.Helper()
	gatewayBin, sandboxBin := os.Getenv("SHIPGATED"), os.Getenv("SHIPGATE_SANDBOX")
	if gatewayBin == "" || sandboxBin == "" {
		if testing.Short() {
			t.Skip("-short: SHIPGATED / SHIPGATE_SANDBOX not set")
		}
		t.Fatal("SHIPGATED and SHIPGATE_SANDBOX must name the shipgated and shipgate-sandbox binaries")
	}
	return gatewayBin, sandboxBin
}

// kill sends SIGKILL and waits for the process.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.waited
	p.waited <- nil // stop() after this returns at once
}

func startSandbox(t *testing.T, bin string) string {
	t.Helper()
	sb, err := startProc([]string{bin, "--listen", "127.0.0.1:0"}, "listening on ")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sb.stop(); err != nil {
			t.Errorf("shipgate-sandbox: %v; stderr:\n%s", err, sb.stderr.String())
		}
	})
	return strings.TrimPrefix(sb.line, "listening on ")
}

// startGateway starts shipgated on loopback tcp with a fresh state directory, the providers at
// sandbox, and extra arguments; it is stopped at cleanup (unless killed). Returns its address.
func startGateway(t *testing.T, bin, sandbox string, extra ...string) (*proc, string) {
	t.Helper()
	args := []string{bin, "--quiet", "--listen", "tcp://127.0.0.1:0", "--set", "state_dir=" + t.TempDir()}
	for _, p := range []string{"boscod", "bosonline", "biteship", "fuuffy"} {
		args = append(args, "--set", p+".base_url="+sandbox+"/"+p)
	}
	gw, err := startProc(append(args, extra...), "shipgated ready on ")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := gw.stop(); err != nil {
			t.Logf("shipgated: %v", err)
		}
		if t.Failed() {
			t.Logf("shipgated stderr:\n%s", gw.stderr.String())
		}
	})
	urls := strings.Fields(strings.TrimPrefix(gw.line, "shipgated ready on "))
	if len(urls) == 0 {
		t.Fatalf("no address in %q", gw.line)
	}
	return gw, urls[0]
}

// startRedis starts /usr/bin/redis-server (or $REDIS_SERVER) on a free loopback port, keeping
// nothing on disk, waits for its PING and stops it at cleanup. Returns its redis:// URL.
func startRedis(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("REDIS_SERVER")
	if bin == "" {
		bin = "/usr/bin/redis-server"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--dir", t.TempDir())
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
		}
	})
	for until := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if conn, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
			_ = conn.SetDeadline(time.Now().Add(time.Second))
			_, _ = conn.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(conn).ReadString('\n')
			_ = conn.Close()
			if strings.HasPrefix(line, "+PONG") {
				return "redis://127.0.0.1:" + port
			}
		}
		select {
		case err := <-waited:
			t.Fatalf("redis-server exited: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(until) {
			t.Fatalf("redis-server on port %s does not answer PING:\n%s", port, out.String())
		}
	}
}

// slowCreate is the list's CreateOrder ("create order: the document's example") with form id
// SLOW-1500: the sandbox holds its POST 1.5 s.
func slowCreate(t *testing.T) *pb.CreateOrderRequest {
	t.Helper()
	path := os.Getenv("SHIPGATE_INTEROP_CASES")
	if path == "" {
		path = filepath.Join("..", "..", "tests", "interop", "cases.json")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []interopCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, cs := range doc.Cases {
		if cs.Name == "create order: the document's example" {
			r := &pb.CreateOrderRequest{}
			if err := protojson.Unmarshal(cs.Request, r); err != nil {
				t.Fatal(err)
			}
			r.FormId = "SLOW-1500"
			return r
		}
	}
	t.Fatalf("%s has no case \"create order: the document's example\"", path)
	return nil
}

const slowHold = 1500 * time.Millisecond // the sandbox's hold of SLOW-1500

// waitPOSTs waits (5 s at most) until the sandbox has n POSTs under /bosonline/order/.
func waitPOSTs(t *testing.T, sandbox string, n int) {
	t.Helper()
	for until := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got, err := sandboxCount(sandbox, "/bosonline/order/")
		if err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(until) {
			t.Fatalf("the sandbox has %d POSTs, want %d", got, n)
		}
	}
}

func wantPOSTs(t *testing.T, sandbox string, n int) {
	t.Helper()
	if got, err := sandboxCount(sandbox, "/bosonline/order/"); err != nil || got != n {
		t.Fatalf("the sandbox has %d POSTs under /bosonline/order/ (%v), want %d", got, err, n)
	}
}

// health asks one gateway its Health, on c (a client of that gateway only; a new one if nil).
func health(t *testing.T, addr string, c *shipgate.Client) *pb.HealthResponse {
	t.Helper()
	if c == nil {
		c = newClient(t, shipgate.Options{Addresses: []string{addr}}, 1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	h, err := c.Health(ctx, nil)
	if err != nil {
		t.Fatalf("Health of %s: %v", addr, err)
	}
	return h
}

// holder returns which of the gateways (addrs, each asked on its own client of cs) has the call
// in flight: the one whose Health counts more calls in flight than before (base), asked until
// one does (3 s at most).
func holder(t *testing.T, addrs []string, cs []*shipgate.Client, base []int64) int {
	t.Helper()
	for until := time.Now().Add(3 * time.Second); time.Now().Before(until); time.Sleep(10 * time.Millisecond) {
		busy := -1
		for i, a := range addrs {
			if health(t, a, cs[i]).GetInFlight() > base[i] {
				if busy >= 0 {
					t.Fatalf("both gateways have calls in flight")
				}
				busy = i
			}
		}
		if busy >= 0 {
			return busy
		}
	}
	t.Fatal("no gateway reports the CreateOrder in flight")
	return -1
}

type callResult struct {
	resp *pb.CreateOrderResponse
	err  error
	info shipgate.CallInfo
}

// twoGateways starts a sandbox and two gateways with extra arguments, and a client of both.
func twoGateways(t *testing.T, o shipgate.Options, extra ...string) (string, []*proc, []string, *shipgate.Client) {
	gatewayBin, sandboxBin := binaries(t)
	sandbox := startSandbox(t, sandboxBin)
	g1, u1 := startGateway(t, gatewayBin, sandbox, extra...)
	g2, u2 := startGateway(t, gatewayBin, sandbox, extra...)
	o.Addresses = []string{u1, u2}
	return sandbox, []*proc{g1, g2}, o.Addresses, newClient(t, o, 2)
}

// killHolder makes a keyed slow CreateOrder on c, kill -9s the gateway that holds its POST and
// returns the call's result, with when the POST was seen.
func killHolder(t *testing.T, c *shipgate.Client, sandbox string, gws []*proc, addrs []string, key string) (callResult, time.Time) {
	t.Helper()
	req := slowCreate(t)
	own := []*shipgate.Client{
		newClient(t, shipgate.Options{Addresses: addrs[:1]}, 1),
		newClient(t, shipgate.Options{Addresses: addrs[1:]}, 1),
	}
	base := []int64{health(t, addrs[0], own[0]).GetInFlight(), health(t, addrs[1], own[1]).GetInFlight()}
	if err := sandboxReset(sandbox); err != nil {
		t.Fatal(err)
	}
	done := make(chan callResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var r callResult
		r.resp, r.err = c.CreateOrder(ctx, req, shipgate.WithIdempotencyKey(key), shipgate.WithCallInfo(&r.info))
		done <- r
	}()
	waitPOSTs(t, sandbox, 1)
	posted := time.Now()
	i := holder(t, addrs, own, base)
	gws[i].kill()
	t.Logf("killed %s, which held the POST", addrs[i])
	select {
	case r := <-done:
		return r, posted
	case <-time.After(10 * time.Second):
		t.Fatal("the CreateOrder did not end within 10 s")
	}
	return callResult{}, posted
}

func TestInteropFleetKill(t *testing.T) {
	t.Parallel()
	redisURL := startRedis(t)
	sandbox, gws, addrs, c := twoGateways(t, shipgate.Options{},
		"--set", "idempotency.store=redis", "--set", "idempotency.redis_url="+redisURL)
	for _, a := range addrs {
		if h := health(t, a, nil); h.GetIdempotencyScope() != "fleet" || h.GetFleetId() != redisURL {
			t.Fatalf("%s: Health says store %q scope %q fleet %q", a, h.GetIdempotencyStore(),
				h.GetIdempotencyScope(), h.GetFleetId())
		}
	}
	r, posted := killHolder(t, c, sandbox, gws, addrs, "go-fleet-kill")
	e := wantErr(t, r.err, shipgate.Unknown, shipgate.ReasonOutcomeUnknown)
	if r.info.Attempts < 2 || e.Retryable {
		t.Fatalf("%+v after %d attempts: it did not move to the other gateway", e, r.info.Attempts)
	}
	t.Logf("fleet kill -9: %s (local %v) after %d attempts: %s", e.Reason, e.Local, r.info.Attempts, e.Message)
	time.Sleep(time.Until(posted.Add(slowHold + 200*time.Millisecond)))
	wantPOSTs(t, sandbox, 1)
}

// cutoff is a TCP proxy in front of a gateway: a network between the client and it that can
// fail. Once it has forwarded a CreateOrder request (it looks for the method name in the bytes
// going to the gateway), with hold it forwards nothing more back to the client; cut closes the
// client's side of every connection and takes no more. The gateway's side stays open either way:
// the gateway goes on with the call, cut off from the client.
type cutoff struct {
	addr    string // tcp://127.0.0.1:P, for the client
	l       net.Listener
	target  string
	hold    bool
	created chan struct{} // closed once a CreateOrder went through

	mu      sync.Mutex
	held    bool
	once    sync.Once
	clients []net.Conn
	conns   []net.Conn
}

func startCutoff(t *testing.T, gateway string, hold bool) *cutoff {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutoff{addr: "tcp://" + l.Addr().String(), l: l, target: strings.TrimPrefix(gateway, "tcp://"),
		hold: hold, created: make(chan struct{})}
	t.Cleanup(func() {
		_ = l.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range append(p.clients, p.conns...) {
			_ = c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.clients = append(p.clients, c)
			p.conns = append(p.conns, up)
			p.mu.Unlock()
			go p.pump(c, up, true)
			go p.pump(up, c, false)
		}
	}()
	return p
}

var createOrderName = []byte(shipgate.MethodCreateOrder)

func (p *cutoff) pump(from, to net.Conn, toGateway bool) {
	buf := make([]byte, 64<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			p.mu.Lock()
			held := p.held && !toGateway
			p.mu.Unlock()
			if !held {
				if _, werr := to.Write(buf[:n]); werr != nil {
					return
				}
			}
			if toGateway && bytes.Contains(buf[:n], createOrderName) {
				p.mu.Lock()
				p.held = p.hold
				p.mu.Unlock()
				p.once.Do(func() { close(p.created) })
			}
		}
		if err != nil {
			if !toGateway {
				_ = to.Close()
			}
			return
		}
	}
}

// cut closes the client's side of every connection and takes no new ones.
func (p *cutoff) cut() {
	_ = p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.clients {
		_ = c.Close()
	}
}

// The fleet, the first attempt getting no answer in time (AttemptTimeout 500 ms, deadline 5 s).
func TestInteropFleetReplay(t *testing.T) {
	t.Parallel()
	gatewayBin, sandboxBin := binaries(t)
	redisURL := startRedis(t)
	sandbox := startSandbox(t, sandboxBin)
	fleet := []string{"--set", "idempotency.store=redis", "--set", "idempotency.redis_url=" + redisURL}
	_, u1 := startGateway(t, gatewayBin, sandbox, fleet...)
	_, u2 := startGateway(t, gatewayBin, sandbox, fleet...)
	create := func(t *testing.T, c *shipgate.Client, form, key string) (*pb.CreateOrderResponse, shipgate.CallInfo, error) {
		t.Helper()
		if err := sandboxReset(sandbox); err != nil {
			t.Fatal(err)
		}
		req := slowCreate(t)
		req.FormId = form
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var info shipgate.CallInfo
		resp, err := c.CreateOrder(ctx, req, shipgate.WithIdempotencyKey(key), shipgate.WithCallInfo(&info))
		return resp, info, err
	}
	attempt := 500 * time.Millisecond

	// the first gateway keeps the deadline it is told (the attempt's, less the reply margin):
	// with the provider slower than that, it answers its own OUTCOME_UNKNOWN before the
	// client's timer, and that answer settles the call
	t.Run("the gateway answers its own OUTCOME_UNKNOWN in time", func(t *testing.T) {
		c := newClient(t, shipgate.Options{Addresses: []string{u1, u2}, AttemptTimeout: attempt}, 2)
		_, info, err := create(t, c, "SLOW-1500", "go-fleet-own-deadline")
		if e := wantErr(t, err, shipgate.Unknown, shipgate.ReasonOutcomeUnknown); e.Local || info.Attempts != 1 {
			t.Fatalf("%+v after %d attempts", e, info.Attempts)
		}
		wantPOSTs(t, sandbox, 1)
	})

	// the first gateway's answer (OK, 300 ms) never reaches the client: its attempt times out,
	// and the other gateway of the fleet replays the stored outcome
	t.Run("the reply is lost: the attempt times out, the fleet replays", func(t *testing.T) {
		p := startCutoff(t, u1, true)
		c := newClient(t, shipgate.Options{Addresses: []string{p.addr, u2}, AttemptTimeout: attempt}, 2)
		resp, info, err := create(t, c, "SLOW-300", "go-fleet-replay-timeout")
		select {
		case <-p.created:
		default:
			t.Fatalf("the first attempt did not go to the first gateway (%v, %+v)", err, info)
		}
		if err != nil || !resp.GetReplayed() || info.Attempts != 2 || info.Address != u2 {
			t.Fatalf("resp %v, err %v, info %+v: want the first gateway's order, replayed by the second", resp, err, info)
		}
		wantPOSTs(t, sandbox, 1)
	})

	// the first gateway is cut off from the client while it holds the POST (1.5 s): the client
	// moves to the other gateway, which waits for the first one's outcome and replays it
	t.Run("cut off while it holds the POST: the other waits and replays", func(t *testing.T) {
		p := startCutoff(t, u1, false)
		// no attempt timeout: the first gateway is told the whole budget, and finishes the POST
		c := newClient(t, shipgate.Options{Addresses: []string{p.addr, u2}}, 2)
		go func() {
			select {
			case <-p.created:
				for until := time.Now().Add(3 * time.Second); time.Now().Before(until); time.Sleep(10 * time.Millisecond) {
					if n, _ := sandboxCount(sandbox, "/bosonline/order/"); n > 0 {
						break
					}
				}
				p.cut()
			case <-time.After(5 * time.Second):
			}
		}()
		resp, info, err := create(t, c, "SLOW-1500", "go-fleet-replay-cut")
		select {
		case <-p.created:
		default:
			t.Fatalf("the first attempt did not go to the first gateway (%v, %+v)", err, info)
		}
		if err != nil || !resp.GetReplayed() || info.Attempts != 2 || info.Address != u2 {
			t.Fatalf("resp %v, err %v, info %+v: want the first gateway's order, replayed by the second", resp, err, info)
		}
		wantPOSTs(t, sandbox, 1)
	})
}

func TestInteropNodeKill(t *testing.T) {
	t.Parallel()
	sandbox, gws, addrs, c := twoGateways(t, shipgate.Options{}) // each its own sqlite store
	for _, a := range addrs {
		if h := health(t, a, nil); h.GetIdempotencyScope() != "node" || h.GetFleetId() != "" {
			t.Fatalf("%s: Health says scope %q fleet %q", a, h.GetIdempotencyScope(), h.GetFleetId())
		}
	}
	r, posted := killHolder(t, c, sandbox, gws, addrs, "go-node-kill")
	e := wantErr(t, r.err, shipgate.Unknown, shipgate.ReasonOutcomeUnknown)
	if !e.Local || e.Retryable || r.info.Attempts != 1 {
		t.Fatalf("%+v after %d attempts", e, r.info.Attempts)
	}
	time.Sleep(time.Until(posted.Add(slowHold + 200*time.Millisecond)))
	wantPOSTs(t, sandbox, 1)
}
