package shipgate_test

// TLS (tls+tcp:// addresses), over certificates the tests make with crypto/x509 in t.TempDir():
//   - the options New refuses (a tls+tcp:// address without a CA, a certificate without its key,
//     files that do not load) and accepts;
//   - an in-process mangos REP server on tls+tcp (runs with -short too);
//   - the real gateway (SHIPGATED, SHIPGATE_SANDBOX) with a tls+tcp:// listener: with the CA,
//     Health and a Track are answered; with another CA, or another server name, the client
//     never connects; with client certificates required (tls.ca_file), the CA's client
//     certificate is served, none and a stranger's are refused; optional: served without one.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/protocol/rep"
	"google.golang.org/protobuf/proto"

	shipgate "shipgate.local/clients/go"
	pb "shipgate.local/clients/go/shipgatev1"
)

// ------------------------------------------------------------------ certificates

// pki is the files of a test's certificates (PEM; each key in a file of its own).
type pki struct {
	ca, otherCA          string // the CA of the gateway and its callers; another one
	srv, srvKey          string // the gateway's, from ca: IP 127.0.0.1, DNS 127.0.0.1 and localhost
	client, clientKey    string // a caller's (ExtKeyUsage ClientAuth), from ca
	stranger, strangerKy string // a caller's from otherCA

	caPool *x509.CertPool
	srvTLS tls.Certificate // srv and srvKey, for an in-process server
}

type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// writePEM writes the blocks to dir/name and returns the path.
func writePEM(t *testing.T, dir, name string, blocks ...*pem.Block) string {
	t.Helper()
	var b []byte
	for _, blk := range blocks {
		b = append(b, pem.EncodeToMemory(blk)...)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mint makes an ECDSA P-256 key and a certificate of tmpl for it, signed by parent (nil: self-
// signed), and writes name.pem and name.key into dir.
func mint(t *testing.T, dir, name string, tmpl *x509.Certificate, parent *issuer) (issuer, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial.Add(serial, big.NewInt(1))
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(48 * time.Hour)
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath := writePEM(t, dir, name+".pem", &pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPath := writePEM(t, dir, name+".key", &pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return issuer{cert: cert, key: key}, certPath, keyPath
}

func newCA(t *testing.T, dir, name string) (issuer, string) {
	t.Helper()
	ca, path, _ := mint(t, dir, name, &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}, nil)
	return ca, path
}

func leaf(cn string, eku x509.ExtKeyUsage) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{eku},
	}
}

func makePKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{}
	var ca, other issuer
	ca, p.ca = newCA(t, dir, "ca")
	other, p.otherCA = newCA(t, dir, "other-ca")
	srv := leaf("127.0.0.1", x509.ExtKeyUsageServerAuth)
	// mbedTLS 2.28 (the gateway's side) matches DNS names only; Go matches the IP address
	srv.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	srv.DNSNames = []string{"127.0.0.1", "localhost"}
	_, p.srv, p.srvKey = mint(t, dir, "srv", srv, &ca)
	_, p.client, p.clientKey = mint(t, dir, "client", leaf("checkout", x509.ExtKeyUsageClientAuth), &ca)
	_, p.stranger, p.strangerKy = mint(t, dir, "stranger", leaf("stranger", x509.ExtKeyUsageClientAuth), &other)
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(ca.cert)
	var err error
	if p.srvTLS, err = tls.LoadX509KeyPair(p.srv, p.srvKey); err != nil {
		t.Fatal(err)
	}
	return p
}

// ------------------------------------------------------------------ options

func TestTLSOptions(t *testing.T) {
	t.Parallel()
	p := makePKI(t)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const tlsAddr = "tls+tcp://127.0.0.1:7443"
	for _, tc := range []struct {
		name  string
		addrs []string
		tls   shipgate.TLSOptions
		want  string // a part of New's error; "" for none
	}{
		{"tls+tcp without a CA", []string{tlsAddr}, shipgate.TLSOptions{}, "needs TLS.CAFile"},
		{"tls+tcp with a client certificate but no CA", []string{tlsAddr},
			shipgate.TLSOptions{CertFile: p.client, KeyFile: p.clientKey}, "needs TLS.CAFile"},
		{"tls+tcp second, without a CA", []string{"tcp://127.0.0.1:7400", tlsAddr}, shipgate.TLSOptions{}, "needs TLS.CAFile"},
		{"a certificate without its key", []string{tlsAddr},
			shipgate.TLSOptions{CAFile: p.ca, CertFile: p.client}, "go together"},
		{"a key without its certificate", []string{tlsAddr},
			shipgate.TLSOptions{CAFile: p.ca, KeyFile: p.clientKey}, "go together"},
		{"a certificate without its key, tcp only", []string{"tcp://127.0.0.1:7400"},
			shipgate.TLSOptions{CertFile: p.client}, "go together"},
		{"a CA file that is not there", []string{tlsAddr},
			shipgate.TLSOptions{CAFile: filepath.Join(dir, "missing.pem")}, "TLS.CAFile"},
		{"a CA file without a certificate", []string{tlsAddr}, shipgate.TLSOptions{CAFile: notPEM}, "no PEM certificate"},
		{"a certificate with another's key", []string{tlsAddr},
			shipgate.TLSOptions{CAFile: p.ca, CertFile: p.client, KeyFile: p.strangerKy}, "TLS.CertFile"},
		{"a tls+tcp address without a port", []string{"tls+tcp://127.0.0.1"},
			shipgate.TLSOptions{CAFile: p.ca}, "host:port"},
		{"tls+tcp with the CA", []string{tlsAddr}, shipgate.TLSOptions{CAFile: p.ca}, ""},
		{"tls+tcp with a pool", []string{tlsAddr}, shipgate.TLSOptions{RootCAs: p.caPool}, ""},
		{"tls+tcp with the CA and a client certificate", []string{tlsAddr, "tcp://127.0.0.1:7400"},
			shipgate.TLSOptions{CAFile: p.ca, CertFile: p.client, KeyFile: p.clientKey, ServerName: "localhost"}, ""},
		{"TLS options, tcp only", []string{"tcp://127.0.0.1:7400"}, shipgate.TLSOptions{CAFile: p.ca}, ""},
	} {
		c, err := shipgate.New(shipgate.Options{Addresses: tc.addrs, TLS: tc.tls})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && err == nil:
			t.Errorf("%s: New accepted it", tc.name)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%s: %v, want an error about %q", tc.name, err, tc.want)
		}
		if c != nil {
			_ = c.Close()
		}
	}
}

// ------------------------------------------------------------------ an in-process server

// tlsServer starts a REP server on tls+tcp://127.0.0.1:0 with cfg, answering Health; returns
// its address.
func tlsServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	sock, err := rep.NewSocket()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sock.Close() })
	l, err := sock.NewListener("tls+tcp://127.0.0.1:0", map[string]interface{}{mangos.OptionTLSConfig: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Listen(); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			m, err := sock.RecvMsg()
			if err != nil {
				return
			}
			env := &pb.RpcRequest{}
			if proto.Unmarshal(m.Body, env) == nil {
				_ = sock.Send(healthy(0, env))
			}
			m.Free()
		}
	}()
	return l.Address()
}

// tlsServed: a client of addr with o is connected and its Health answered.
func tlsServed(t *testing.T, addr string, o shipgate.TLSOptions) {
	t.Helper()
	c := newClient(t, shipgate.Options{Addresses: []string{addr}, TLS: o}, 1)
	h, err := c.Health(timeout(t, 3*time.Second), nil)
	if err != nil || h.GetStatus() != pb.HealthResponse_SERVING_STATUS_SERVING {
		t.Fatalf("Health over %s: %v %v", addr, h, err)
	}
}

// tlsRefused: a client of addr with o never connects; its call fails fast, unsent.
func tlsRefused(t *testing.T, addr string, o shipgate.TLSOptions) {
	t.Helper()
	c, err := shipgate.New(shipgate.Options{Addresses: []string{addr}, TLS: o,
		ConnectTimeout: 300 * time.Millisecond, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	var info shipgate.CallInfo
	_, err = c.Health(timeout(t, 3*time.Second), nil, shipgate.WithCallInfo(&info))
	e := wantErr(t, err, shipgate.Unavailable, shipgate.ReasonTransportNotConnected)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the call took %v", took)
	}
	if !e.Local || info.Attempts != 1 || c.Connected() != 0 {
		t.Fatalf("%+v after %d attempts, %d connected", e, info.Attempts, c.Connected())
	}
	if !strings.Contains(e.Message, "over TLS") {
		t.Errorf("message %q says nothing of TLS", e.Message)
	}
}

func TestTLSInProcess(t *testing.T) {
	t.Parallel()
	p := makePKI(t)
	plain := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{p.srvTLS}})
	mutual := tlsServer(t, &tls.Config{Certificates: []tls.Certificate{p.srvTLS},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.caPool})

	t.Run("the CA", func(t *testing.T) { tlsServed(t, plain, shipgate.TLSOptions{CAFile: p.ca}) })
	t.Run("the CA as a pool", func(t *testing.T) { tlsServed(t, plain, shipgate.TLSOptions{RootCAs: p.caPool}) })
	t.Run("server name localhost", func(t *testing.T) {
		tlsServed(t, plain, shipgate.TLSOptions{CAFile: p.ca, ServerName: "localhost"})
	})
	t.Run("another CA", func(t *testing.T) { tlsRefused(t, plain, shipgate.TLSOptions{CAFile: p.otherCA}) })
	t.Run("another server name", func(t *testing.T) {
		tlsRefused(t, plain, shipgate.TLSOptions{CAFile: p.ca, ServerName: "wrong.example"})
	})
	t.Run("mTLS: the CA's client certificate", func(t *testing.T) {
		tlsServed(t, mutual, shipgate.TLSOptions{CAFile: p.ca, CertFile: p.client, KeyFile: p.clientKey})
	})
	// TLS 1.3 here (Go on both sides): the server's refusal comes after the client's handshake
	// ends, and breaks the SP handshake instead; the connection never attaches either way
	t.Run("mTLS: no certificate", func(t *testing.T) { tlsRefused(t, mutual, shipgate.TLSOptions{CAFile: p.ca}) })
	t.Run("mTLS: a stranger's certificate", func(t *testing.T) {
		tlsRefused(t, mutual, shipgate.TLSOptions{CAFile: p.ca, CertFile: p.stranger, KeyFile: p.strangerKy})
	})
}

// ------------------------------------------------------------------ the gateway

// startTLSGateway starts shipgated with one tls+tcp:// listener (the certificate srv), the
// providers at sandbox, a fresh state directory and extra settings; stopped at cleanup.
// Returns its tls+tcp:// address.
func startTLSGateway(t *testing.T, bin, sandbox string, p *pki, extra ...string) string {
	t.Helper()
	args := []string{bin, "--quiet", "--listen", "tls+tcp://127.0.0.1:0", "--set", "state_dir=" + t.TempDir(),
		"--set", "tls.cert_file=" + p.srv, "--set", "tls.key_file=" + p.srvKey}
	for _, prov := range []string{"boscod", "bosonline", "biteship", "fuuffy"} {
		args = append(args, "--set", prov+".base_url="+sandbox+"/"+prov)
	}
	gw, err := startProc(append(args, extra...), "shipgated ready on ")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := gw.stop(); err != nil {
			t.Errorf("shipgated: %v; stderr:\n%s", err, gw.stderr.String())
		}
		if t.Failed() {
			t.Logf("shipgated stderr:\n%s", gw.stderr.String())
		}
	})
	urls := strings.Fields(strings.TrimPrefix(gw.line, "shipgated ready on "))
	if len(urls) != 1 || !strings.HasPrefix(urls[0], "tls+tcp://127.0.0.1:") {
		t.Fatalf("gateway ready on %q, want one tls+tcp://127.0.0.1:PORT", gw.line)
	}
	return urls[0]
}

// trackOver: a client of addr with o (connected) has its Health and a Track of BOS123 answered.
func trackOver(t *testing.T, addr string, o shipgate.TLSOptions) {
	t.Helper()
	c := newClient(t, shipgate.Options{Addresses: []string{addr}, TLS: o}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := c.Health(ctx, nil)
	if err != nil || h.GetStatus() != pb.HealthResponse_SERVING_STATUS_SERVING {
		t.Fatalf("Health over %s: %v %v", addr, h, err)
	}
	resp, err := c.Track(ctx, &pb.TrackRequest{Provider: pb.Provider_PROVIDER_BOSCOD, OrderId: "BOS123"})
	if err != nil {
		t.Fatalf("Track over %s: %v", addr, err)
	}
	if tr := resp.GetTracking(); tr.GetOrderId() != "BOS123" || tr.GetStatus() != pb.TrackingStatus_TRACKING_STATUS_DELIVERED {
		t.Fatalf("Track over %s: %v", addr, resp)
	}
}

func TestInteropTLS(t *testing.T) {
	t.Parallel()
	gatewayBin, sandboxBin := binaries(t)
	p := makePKI(t)
	sandbox := startSandbox(t, sandboxBin)
	plain := startTLSGateway(t, gatewayBin, sandbox, p)
	mutual := startTLSGateway(t, gatewayBin, sandbox, p, "--set", "tls.ca_file="+p.ca)
	optional := startTLSGateway(t, gatewayBin, sandbox, p, "--set", "tls.ca_file="+p.ca,
		"--set", "tls.client_auth=optional")

	t.Run("the CA: Health and Track", func(t *testing.T) { trackOver(t, plain, shipgate.TLSOptions{CAFile: p.ca}) })
	t.Run("server name localhost", func(t *testing.T) {
		tlsServed(t, plain, shipgate.TLSOptions{CAFile: p.ca, ServerName: "localhost"})
	})
	t.Run("another CA: never connects", func(t *testing.T) {
		tlsRefused(t, plain, shipgate.TLSOptions{CAFile: p.otherCA})
	})
	t.Run("another server name: never connects", func(t *testing.T) {
		tlsRefused(t, plain, shipgate.TLSOptions{CAFile: p.ca, ServerName: "wrong.example"})
	})
	t.Run("mTLS required: the CA's client certificate", func(t *testing.T) {
		trackOver(t, mutual, shipgate.TLSOptions{CAFile: p.ca, CertFile: p.client, KeyFile: p.clientKey})
	})
	t.Run("mTLS required: no certificate refused", func(t *testing.T) {
		tlsRefused(t, mutual, shipgate.TLSOptions{CAFile: p.ca})
	})
	t.Run("mTLS required: a stranger's certificate refused", func(t *testing.T) {
		tlsRefused(t, mutual, shipgate.TLSOptions{CAFile: p.ca, CertFile: p.stranger, KeyFile: p.strangerKy})
	})
	t.Run("mTLS optional: no certificate served", func(t *testing.T) {
		tlsServed(t, optional, shipgate.TLSOptions{CAFile: p.ca})
	})
	t.Run("mTLS optional: the CA's client certificate served", func(t *testing.T) {
		tlsServed(t, optional, shipgate.TLSOptions{CAFile: p.ca, CertFile: p.client, KeyFile: p.clientKey})
	})
}
