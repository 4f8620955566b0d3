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
