package shipgate

// TLS to gateways: tls+tcp:// addresses, dialed with mangos's tlstcp transport (imported in
// client.go) and the tls.Config built here, passed to each dialer as mangos.OptionTLSConfig.
// The rules are the C client's (shipgate_tls_opts in include/shipgate/client.h): a CA is
// required, the gateway's certificate and name are always verified, a client certificate is
// optional (cert and key together).

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

const tlsScheme = "tls+tcp://"

// TLSOptions configure TLS to tls+tcp:// gateway addresses (Options.TLS). The gateway's
// certificate is always verified: it must chain to one of the CAs, and carry the server name.
// The gateways of one client share these options.
type TLSOptions struct {
	// PEM bundle of the CA certificates the gateway's certificate must chain to. A tls+tcp://
	// address needs it, or RootCAs.
	CAFile string
	// The CAs as a pool, instead of CAFile or besides it (CAFile's certificates are then added
	// to a copy of the pool). The system's pool is never used unless given here.
	RootCAs *x509.CertPool
	// PEM client certificate (the chain, leaf first) and its PEM private key, for a gateway that
	// requires one (mTLS). Both or neither.
	CertFile string
	KeyFile  string
	// The name the gateway's certificate must carry: a DNS name or an IP address. "": each
	// address's host ("127.0.0.1" for tls+tcp://127.0.0.1:7443).
	ServerName string
}

func (t *TLSOptions) empty() bool {
	return t.CAFile == "" && t.RootCAs == nil && t.CertFile == "" && t.KeyFile == "" && t.ServerName == ""
}

// config loads the TLS options into the configuration every tls+tcp:// dialer starts from
// (dialerTLS), or returns nil when there is neither a tls+tcp:// address nor a TLS option.
// It fails when a tls+tcp:// address has no CA, when a certificate comes without its key (or a
// key without its certificate), and when a file does not load.
func (t *TLSOptions) config(addrs []string) (*tls.Config, error) {
	needed := ""
	for _, a := range addrs {
		if strings.HasPrefix(a, tlsScheme) {
			needed = a
			break
		}
	}
	if needed == "" && t.empty() {
		return nil, nil
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("shipgate: TLS.CertFile and TLS.KeyFile go together: a client " +
			"certificate needs its key, a key its certificate")
	}
	if t.CAFile == "" && t.RootCAs == nil && needed != "" {
		return nil, fmt.Errorf("shipgate: address %q: a tls+tcp:// address needs TLS.CAFile "+
			"(or TLS.RootCAs), the CA the gateway's certificate must chain to", needed)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12, // the gateway (nng with mbedTLS) speaks TLS 1.2
		RootCAs:    t.RootCAs,
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("shipgate: TLS.CAFile: %w", err)
		}
		pool := x509.NewCertPool()
		if t.RootCAs != nil {
			pool = t.RootCAs.Clone()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("shipgate: TLS.CAFile %s: no PEM certificate in it", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("shipgate: TLS.CertFile %s / TLS.KeyFile %s: %w", t.CertFile, t.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// dialerTLS is the configuration of one tls+tcp:// address's dialer: base (never nil here:
// config refuses a tls+tcp:// address without one) with the server name to verify, serverName
// or else the address's host.
func dialerTLS(base *tls.Config, addr, serverName string) (*tls.Config, error) {
	if base == nil || base.RootCAs == nil {
		return nil, fmt.Errorf("shipgate: address %q: a tls+tcp:// address needs TLS.CAFile", addr)
	}
	if serverName == "" {
		host, _, err := net.SplitHostPort(strings.TrimPrefix(addr, tlsScheme))
		if err != nil || host == "" {
			return nil, fmt.Errorf("shipgate: address %q: want tls+tcp://host:port", addr)
		}
		serverName = host
	}
	cfg := base.Clone()
	cfg.ServerName = serverName
	cfg.InsecureSkipVerify = false // verification stays on, whatever
	return cfg, nil
}

// tlsHint is what a TRANSPORT_NOT_CONNECTED message adds for a tls+tcp:// address: the TLS
// handshake's failures are not reported by mangos, they look like a gateway that is down.
func (ep *endpoint) tlsHint() string {
	if !ep.tls {
		return ""
	}
	return " (over TLS, also when the gateway's certificate does not chain to TLS.CAFile or " +
		"does not carry the server name, or when the gateway refuses the client certificate " +
		"or its absence)"
}
