package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkassign/bulkassign/internal/auth"
	"github.com/bulkassign/bulkassign/internal/config"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const certClientID = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

// appSim serves one app registration that signs in with cert (and the
// default client, which has a secret).
func appSim(t *testing.T, cert testenv.AppCertificate) *graphsim.Server {
	t.Helper()
	sim, err := graphsim.New(graphsim.Config{Clients: []graphsim.Client{
		{ID: graphsim.DefaultClientID, Secret: graphsim.DefaultClientSecret, Delegated: true},
		{ID: certClientID, Certificate: cert.Cert},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}

func TestAppSignIn(t *testing.T) {
	t.Parallel()
	registered := testenv.NewAppCertificate(t, "registered")
	stranger := testenv.NewAppCertificate(t, "stranger")
	sim := appSim(t, registered)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	ecPath := filepath.Join(t.TempDir(), "ec.pem")
	if err := os.WriteFile(ecPath, append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: registered.Cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})...), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.pfx")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	const pfxPassword = "pfx password 1!"

	tests := []struct {
		name     string
		cfg      auth.AppConfig
		newErr   string // error from NewApp (settings), or
		checkErr string // error from Check (the authority's answer); both empty: works
	}{
		{name: "secret", cfg: auth.AppConfig{ClientID: graphsim.DefaultClientID, Secret: graphsim.DefaultClientSecret}},
		{name: "wrong secret", cfg: auth.AppConfig{ClientID: graphsim.DefaultClientID, Secret: "not-the-secret"},
			checkErr: "sign-in failed: AADSTS7000215: Invalid client secret provided"},
		{name: "PEM certificate", cfg: auth.AppConfig{ClientID: certClientID, CertificatePath: registered.WritePEM(t)}},
		{name: "PFX certificate (AES)", cfg: auth.AppConfig{ClientID: certClientID, CertificatePath: registered.WritePFX(t, pfxPassword, false), CertificatePassword: pfxPassword}},
		{name: "PFX certificate (legacy 3DES)", cfg: auth.AppConfig{ClientID: certClientID, CertificatePath: registered.WritePFX(t, pfxPassword, true), CertificatePassword: pfxPassword}},
		{name: "PFX without a password", cfg: auth.AppConfig{ClientID: certClientID, CertificatePath: registered.WritePFX(t, "", false)}},
		{name: "certificate the tenant does not know", cfg: auth.AppConfig{ClientID: certClientID, CertificatePath: stranger.WritePEM(t)},
			checkErr: "sign-in failed: AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application"},
		{name: "PFX wrong password", cfg: auth.AppConfig{ClientID: certClientID, CertificatePath: registered.WritePFX(t, pfxPassword, false), CertificatePassword: "wrong"},
			newErr: "AZURE_CLIENT_CERTIFICATE_PASSWORD: the password does not open the PKCS#12 file"},
		{name: "PFX password missing", cfg: auth.AppConfig{ClientID: certClientID, CertificatePath: registered.WritePFX(t, pfxPassword, false)},
			newErr: "is a password-protected PKCS#12 file and no password is set"},
		{name: "EC key", cfg: auth.AppConfig{ClientID: certClientID, CertificatePath: ecPath},
			newErr: "need an RSA key"},
		{name: "not a certificate", cfg: auth.AppConfig{ClientID: certClientID, CertificatePath: garbage},
			newErr: "AZURE_CLIENT_CERTIFICATE_PATH " + garbage + ": neither PEM nor a PKCS#12 file"},
		{name: "missing file", cfg: auth.AppConfig{ClientID: certClientID, CertificatePath: garbage + ".missing"},
			newErr: "AZURE_CLIENT_CERTIFICATE_PATH: open " + garbage + ".missing"},
		{name: "unknown tenant", cfg: auth.AppConfig{TenantID: "11111111-2222-4333-8444-555555555555", ClientID: graphsim.DefaultClientID, Secret: graphsim.DefaultClientSecret},
			checkErr: "AADSTS90002"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.AuthorityHost = sim.AuthorityHost()
			if cfg.TenantID == "" {
				cfg.TenantID = sim.TenantID()
			}
			cfg.Scope = sim.Scope()
			a, err := auth.NewApp(cfg)
			if tt.newErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.newErr) {
					t.Fatalf("NewApp: %v, want an error containing %q", err, tt.newErr)
				}
				checkNoSecret(t, err.Error(), pfxPassword, "wrong")
				return
			}
			if err != nil {
				t.Fatalf("NewApp: %v", err)
			}
			tok, err := a.Token(context.Background(), graph.TokenOptions{})
			if tt.checkErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.checkErr) {
					t.Fatalf("Token: %v, want an error containing %q", err, tt.checkErr)
				}
				if strings.ContainsAny(err.Error(), "\n") || strings.Contains(err.Error(), "Trace ID") {
					t.Fatalf("Token error %q is not one clean line", err)
				}
				checkNoSecret(t, err.Error(), append(sim.IssuedSecrets(), "not-the-secret")...)
				return
			}
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			if !strings.HasPrefix(tok, "gs1.") {
				t.Fatalf("Token = %.8q..., want a simulator access token", tok)
			}
		})
	}
}

func checkNoSecret(t *testing.T, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if len(s) >= 5 && strings.Contains(text, s) {
			t.Fatalf("%q contains a secret (%.6s...)", text, s)
		}
	}
}

func TestInstanceDiscoveryOnlyForMicrosoftClouds(t *testing.T) {
	t.Parallel()
	for name, c := range config.Clouds {
		for _, host := range []string{c.AuthorityHost, c.AuthorityHost + "/", strings.ToUpper(c.AuthorityHost)} {
			if !auth.KnownAuthorityHost(host) {
				t.Errorf("cloud %s: KnownAuthorityHost(%q) = false, want true", name, host)
			}
		}
	}
	for _, host := range []string{"https://127.0.0.1:8443", "https://login.example.test", "https://login.microsoftonline.com.example.test"} {
		if auth.KnownAuthorityHost(host) {
			t.Errorf("KnownAuthorityHost(%q) = true, want false (instance discovery off)", host)
		}
	}
}
