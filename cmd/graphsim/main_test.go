package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"

	"github.com/bulkassign/bulkassign/internal/graphsim"
)

func TestMain(m *testing.M) { os.Exit(graphsim.RunWithCA(m)) }

func TestParseLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    graphsim.Limit
		wantErr bool
	}{
		{"", graphsim.Limit{}, false},
		{"none", graphsim.Limit{}, false},
		{"100/20s", graphsim.Limit{N: 100, Window: 20 * time.Second}, false},
		{"5/m", graphsim.Limit{N: 5, Window: time.Minute}, false},
		{"bucket:10/s", graphsim.Limit{Mode: graphsim.TokenBucket, Rate: 10}, false},
		{"bucket:100/20s,50", graphsim.Limit{Mode: graphsim.TokenBucket, Rate: 5, Burst: 50}, false},
		{"bucket:0.5/s", graphsim.Limit{Mode: graphsim.TokenBucket, Rate: 0.5}, false},
		{"1.5/s", graphsim.Limit{}, true},
		{"100/20s,5", graphsim.Limit{}, true},
		{"100", graphsim.Limit{}, true},
		{"100/0s", graphsim.Limit{}, true},
		{"bucket:0/s", graphsim.Limit{}, true},
	}
	for _, tt := range tests {
		got, err := parseLimit(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Fatalf("parseLimit(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

type started struct {
	env    map[string]string
	stderr *bytes.Buffer
	cancel context.CancelFunc
	done   chan error
}

// start runs the command and waits for its environment lines.
func start(t *testing.T, args ...string) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	st := &started{env: map[string]string{}, stderr: &bytes.Buffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := run(ctx, args, pw, st.stderr)
		_ = pw.CloseWithError(io.EOF)
		st.done <- err
	}()
	t.Cleanup(func() {
		cancel()
		<-st.done
	})
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# graphsim ready") {
			go func() { _, _ = io.Copy(io.Discard, pr) }()
			return st
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("stdout line %q is not NAME=value", line)
		}
		st.env[k] = strings.Trim(v, "'")
	}
	err := <-st.done
	st.done <- err
	t.Fatalf("graphsim stopped before it was ready: %v (stderr %s)", err, st.stderr)
	return nil
}

func (st *started) stop(t *testing.T) {
	t.Helper()
	st.cancel()
	select {
	case err := <-st.done:
		st.done <- err
		if err != nil {
			t.Fatalf("run returned %v after cancel, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("run did not return after cancel")
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func TestRunServesAndStops(t *testing.T) {
	t.Parallel()
	caPath := filepath.Join(t.TempDir(), "ca.pem")
	st := start(t, "-ca-out", caPath, "-client-secret", "s3cret", "-configurations-count", "3", "-write-limit", "2/1m", "-page-size", "1")

	for _, k := range []string{"GRAPH_BASE_URL", "AZURE_AUTHORITY_HOST", "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "SSL_CERT_FILE", "GRAPHSIM_URL"} {
		if st.env[k] == "" {
			t.Fatalf("stdout lacks %s: %v", k, st.env)
		}
	}
	if _, ok := st.env["AZURE_CLIENT_SECRET"]; ok {
		t.Fatalf("printed a secret the caller chose")
	}
	if st.env["SSL_CERT_FILE"] != caPath || st.env["GRAPH_BASE_URL"] != st.env["AZURE_AUTHORITY_HOST"]+"/beta" {
		t.Fatalf("env %v", st.env)
	}
	pemBytes, _ := os.ReadFile(caPath)
	want, _ := graphsim.CAPEM()
	if !bytes.Equal(pemBytes, want) {
		t.Fatalf("-ca-out file does not hold the CA")
	}

	resp, err := httpClient.PostForm(st.env["AZURE_AUTHORITY_HOST"]+"/"+st.env["AZURE_TENANT_ID"]+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {st.env["AZURE_CLIENT_ID"]},
		"client_secret": {"s3cret"}, "scope": {st.env["GRAPHSIM_URL"] + "/.default"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if tok.AccessToken == "" {
		t.Fatalf("no token: %d", resp.StatusCode)
	}

	var cfgs []string
	getJSON(t, st.env["GRAPHSIM_URL"]+"/_sim/configurations", &cfgs)
	if len(cfgs) != 3 {
		t.Fatalf("configurations %v, want 3", cfgs)
	}
	var statuses []int
	for i := range 3 {
		body := fmt.Sprintf(`{"@odata.type":"#microsoft.graph.deviceConfigurationAssignment","target":{"@odata.type":"#microsoft.graph.groupAssignmentTarget","groupId":"00000000-0000-4000-8000-00000000000%d"}}`, i)
		req, _ := http.NewRequest(http.MethodPost, st.env["GRAPH_BASE_URL"]+"/deviceManagement/deviceConfigurations/"+cfgs[0]+"/assignments", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	if fmt.Sprint(statuses) != "[201 201 429]" {
		t.Fatalf("statuses %v, want [201 201 429] under -write-limit 2/1m", statuses)
	}
	var stats graphsim.Stats
	getJSON(t, st.env["GRAPHSIM_URL"]+"/_sim/stats", &stats)
	if stats.Throttled != 1 || stats.Created != 2 {
		t.Fatalf("stats %+v", stats)
	}
	st.stop(t)
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := httpClient.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

func TestRunWithCertificateAndConfigurationFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "app"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPath := filepath.Join(dir, "app.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "configs.txt")
	if err := os.WriteFile(cfgPath, []byte("# ids\n{11111111-2222-4333-8444-555555555555}\n\nAAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const appID = "12345678-1234-4234-8234-123456789012"
	st := start(t, "-client-id", appID, "-client-cert", certPath, "-configurations", cfgPath, "-tenant", "Contoso-Tenant")
	if st.env["AZURE_CLIENT_ID"] != appID || st.env["AZURE_TENANT_ID"] != "contoso-tenant" {
		t.Fatalf("env %v", st.env)
	}
	cert, _ := x509.ParseCertificate(der)
	cred, err := confidential.NewCredFromCert([]*x509.Certificate{cert}, key)
	if err != nil {
		t.Fatal(err)
	}
	app, err := confidential.New(st.env["AZURE_AUTHORITY_HOST"]+"/"+st.env["AZURE_TENANT_ID"], appID, cred, confidential.WithInstanceDiscovery(false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.AcquireTokenByCredential(t.Context(), []string{st.env["GRAPHSIM_URL"] + "/.default"}); err != nil {
		t.Fatalf("certificate sign-in: %v", err)
	}
	var cfgs []string
	getJSON(t, st.env["GRAPHSIM_URL"]+"/_sim/configurations", &cfgs)
	if fmt.Sprint(cfgs) != "[11111111-2222-4333-8444-555555555555 aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee]" {
		t.Fatalf("configurations %v", cfgs)
	}
	st.stop(t)
}

func TestRunWithTenants(t *testing.T) {
	t.Parallel()
	const (
		fabrikam = "bbbbbbbb-0000-4000-8000-00000000000b"
		refusing = "c0000000-0000-4000-8000-0000000c0175"
		cfg      = "11111111-2222-4333-8444-555555555555"
	)
	tenantFile := filepath.Join(t.TempDir(), "tenants.json")
	if err := os.WriteFile(tenantFile, []byte(`{"configurations":["aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"],
	  "tenants":[{"id":"`+fabrikam+`","name":"Fabrikam","writeLimit":"1/1m","configurations":["`+cfg+`"]},
	             {"id":"`+refusing+`","refuse":"disabled"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	st := start(t, "-tenant-file", tenantFile, "-tenant-name", "Contoso")
	if st.env["GRAPHSIM_TENANTS"] != fabrikam+","+refusing {
		t.Fatalf("GRAPHSIM_TENANTS = %q", st.env["GRAPHSIM_TENANTS"])
	}
	token := func(tenant string) (int, string) {
		resp, err := httpClient.PostForm(st.env["AZURE_AUTHORITY_HOST"]+"/"+tenant+"/oauth2/v2.0/token", url.Values{
			"grant_type": {"client_credentials"}, "client_id": {st.env["AZURE_CLIENT_ID"]},
			"client_secret": {st.env["AZURE_CLIENT_SECRET"]}, "scope": {st.env["GRAPHSIM_URL"] + "/.default"},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tok struct {
			AccessToken string `json:"access_token"`
			ErrorCodes  []int  `json:"error_codes"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&tok)
		if tok.AccessToken == "" {
			return resp.StatusCode, fmt.Sprint(tok.ErrorCodes)
		}
		return resp.StatusCode, tok.AccessToken
	}
	if code, codes := token(refusing); code != http.StatusBadRequest || codes != "[7000112]" {
		t.Fatalf("refusing tenant: %d %s", code, codes)
	}
	code, tok := token(fabrikam)
	if code != http.StatusOK {
		t.Fatalf("Fabrikam token: %d %s", code, tok)
	}
	do := func(method, path string) int {
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(`{"@odata.type":"#microsoft.graph.deviceConfigurationAssignment","target":{"@odata.type":"#microsoft.graph.allDevicesAssignmentTarget"}}`)
		}
		req, _ := http.NewRequest(method, st.env["GRAPH_BASE_URL"]+path, body)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	got := fmt.Sprint(do(http.MethodPost, "/deviceManagement/deviceConfigurations/"+cfg+"/assignments"),
		do(http.MethodPost, "/deviceManagement/deviceConfigurations/"+cfg+"/assignments"),
		do(http.MethodGet, "/deviceManagement/deviceConfigurations/aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"),
		do(http.MethodGet, "/organization"))
	if got != "201 429 404 200" {
		t.Fatalf("Fabrikam's Graph: %s, want 201 429 404 200", got)
	}
	var ledger []graphsim.LedgerEntry
	getJSON(t, st.env["GRAPHSIM_URL"]+"/_sim/ledger?tenant="+fabrikam, &ledger)
	if len(ledger) != 1 || ledger[0].ConfigurationID != cfg {
		t.Fatalf("Fabrikam ledger %+v", ledger)
	}
	getJSON(t, st.env["GRAPHSIM_URL"]+"/_sim/ledger", &ledger)
	if len(ledger) != 0 {
		t.Fatalf("default tenant ledger %+v", ledger)
	}
	var tenants []struct{ ID, Name string }
	getJSON(t, st.env["GRAPHSIM_URL"]+"/_sim/tenants", &tenants)
	if len(tenants) != 3 || tenants[0].Name != "Contoso" || tenants[1].Name != "Fabrikam" {
		t.Fatalf("tenants %+v", tenants)
	}
	st.stop(t)
}

func TestRunRejectsBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt")
	_ = os.WriteFile(bad, []byte("not-a-guid\n"), 0o600)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-nope"}, "flag provided but not defined"},
		{"bad limit", []string{"-write-limit", "lots"}, "-write-limit"},
		{"bad configuration file", []string{"-configurations", bad}, "bad.txt:1"},
		{"bad tenant file", []string{"-tenant-file", bad}, "bad.txt"},
		{"missing certificate", []string{"-client-cert", filepath.Join(dir, "none.pem")}, "none.pem"},
		{"fault over 1", []string{"-fault-503", "1.5"}, "P503"},
		{"bad client id", []string{"-client-id", "app"}, "not a GUID"},
		{"extra argument", []string{"serve"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%v) = %v, want an error mentioning %q", tt.args, err, tt.want)
			}
			if out.Len() != 0 {
				t.Fatalf("printed %q before failing", out.String())
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://127.0.0.1:1234/beta": "https://127.0.0.1:1234/beta",
		"/tmp/a b/ca.pem":             "'/tmp/a b/ca.pem'",
		"it's":                        `'it'\''s'`,
		"graphsim~secret":             "'graphsim~secret'",
	} {
		if got := shellQuote(in); got != want {
			t.Fatalf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
