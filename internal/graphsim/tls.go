package graphsim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// pki is the process-wide certificate authority and the loopback leaf it
// signs. It is generated once per process and kept in memory only, so every
// Server in a process presents a certificate that chains to the same CA and
// one SSL_CERT_FILE serves them all.
type pki struct {
	caPEM []byte
	pool  *x509.CertPool
	leaf  tls.Certificate
	err   error
}

var (
	pkiOnce sync.Once
	thePKI  pki
)

func loadPKI() (*pki, error) {
	pkiOnce.Do(func() { thePKI = generatePKI() })
	return &thePKI, thePKI.err
}

func generatePKI() pki {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return pki{err: fmt.Errorf("graphsim: CA key: %w", err)}
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "graphsim test CA " + randomHex(4), Organization: []string{"bulkassign graphsim (simulator, not trusted outside tests)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(5 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return pki{err: fmt.Errorf("graphsim: CA certificate: %w", err)}
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return pki{err: fmt.Errorf("graphsim: CA certificate: %w", err)}
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return pki{err: fmt.Errorf("graphsim: leaf key: %w", err)}
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(2 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		return pki{err: fmt.Errorf("graphsim: leaf certificate: %w", err)}
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pki{
		caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pool:  pool,
		leaf:  tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey},
	}
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}

// CAPEM returns the PEM encoding of this process's simulator CA certificate.
// It is the same for every Server in the process.
func CAPEM() ([]byte, error) {
	p, err := loadPKI()
	if err != nil {
		return nil, err
	}
	return bytes.Clone(p.caPEM), nil
}

// CertPool returns a pool holding only the simulator CA, for clients that
// are handed their trust explicitly instead of through SSL_CERT_FILE.
func CertPool() (*x509.CertPool, error) {
	p, err := loadPKI()
	if err != nil {
		return nil, err
	}
	return p.pool.Clone(), nil
}

// NewHTTPClient returns an http.Client that trusts the simulator CA (and
// nothing else), independent of SSL_CERT_FILE.
func NewHTTPClient() (*http.Client, error) {
	pool, err := CertPool()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}

// WriteCAFile writes the simulator CA certificate (PEM) to path, mode 0644.
func WriteCAFile(path string) error {
	b, err := CAPEM()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// CAFileName is the file name UseCA writes in its directory.
const CAFileName = "graphsim-ca.pem"

// UseCA writes the simulator CA to dir/graphsim-ca.pem and points the
// SSL_CERT_FILE environment variable at it (unless it already does), so that
// plain http.Clients using the system roots — as production code does —
// trust the simulator. It returns the file's path.
//
// Go reads SSL_CERT_FILE once per process, at the first TLS verification
// that uses the system roots; changing it later has no effect. Call UseCA
// from TestMain before anything dials TLS (tests cannot use t.Setenv for
// this, and must not run in parallel with code that has already loaded the
// system roots). Setting SSL_CERT_FILE replaces the system bundle file for
// the whole process: only the simulator CA (plus any SSL_CERT_DIR
// certificates) is trusted afterwards, which is what a test wants.
func UseCA(dir string) (string, error) {
	path, err := filepath.Abs(filepath.Join(dir, CAFileName))
	if err != nil {
		return "", err
	}
	if err := WriteCAFile(path); err != nil {
		return "", err
	}
	if os.Getenv("SSL_CERT_FILE") != path {
		if err := os.Setenv("SSL_CERT_FILE", path); err != nil {
			return "", err
		}
	}
	return path, nil
}

// RunWithCA runs tests (a *testing.M) in a process that trusts the
// simulator through SSL_CERT_FILE, as production code would, and returns
// their exit code. Call it from TestMain: os.Exit(graphsim.RunWithCA(m)).
func RunWithCA(m interface{ Run() int }) int {
	dir, err := os.MkdirTemp("", "graphsim-ca-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if _, err := UseCA(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}
