package graphsim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bulkassign/bulkassign/internal/graphsim"
)

// TestMain points SSL_CERT_FILE at the simulator CA before anything dials,
// so that http.DefaultClient and MSAL's default client trust the simulator
// exactly as production code would.
func TestMain(m *testing.M) { os.Exit(graphsim.RunWithCA(m)) }

func newServer(t *testing.T, cfg graphsim.Config) *graphsim.Server {
	t.Helper()
	s, err := graphsim.New(cfg)
	if err != nil {
		t.Fatalf("graphsim.New: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// client is a plain client: system roots (SSL_CERT_FILE), no retries.
var client = &http.Client{Timeout: 20 * time.Second}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	TokenType    string `json:"token_type"`
	Error        string `json:"error"`
	ErrorDesc    string `json:"error_description"`
	ErrorCodes   []int  `json:"error_codes"`
}

// postForm posts a form to the token endpoint and decodes the answer.
func postForm(t *testing.T, endpoint string, form url.Values) (int, tokenResponse) {
	t.Helper()
	resp, err := client.PostForm(endpoint, form)
	if err != nil {
		t.Fatalf("POST %s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatalf("decode token answer: %v", err)
	}
	return resp.StatusCode, tr
}

// appToken gets a client-credentials token for the default client.
func appToken(t *testing.T, s *graphsim.Server) string {
	t.Helper()
	return appTokenWith(t, s, url.Values{})
}

func appTokenWith(t *testing.T, s *graphsim.Server, extra url.Values) string {
	t.Helper()
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {graphsim.DefaultClientID},
		"client_secret": {graphsim.DefaultClientSecret},
		"scope":         {s.Scope()},
	}
	for k, v := range extra {
		form[k] = v
	}
	code, tr := postForm(t, s.Authority()+"/oauth2/v2.0/token", form)
	if code != http.StatusOK || tr.AccessToken == "" {
		t.Fatalf("token: got %d %s %s, want 200 with a token", code, tr.Error, tr.ErrorDesc)
	}
	return tr.AccessToken
}

type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errorCode returns Graph's error.code of an error answer.
func (r result) errorCode(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError struct {
				Date            string `json:"date"`
				RequestID       string `json:"request-id"`
				ClientRequestID string `json:"client-request-id"`
			} `json:"innerError"`
		} `json:"error"`
	}
	r.decode(t, &e)
	if e.Error.InnerError.RequestID == "" || e.Error.InnerError.RequestID != r.header.Get("request-id") {
		t.Fatalf("innerError.request-id = %q, header request-id = %q; want equal and set", e.Error.InnerError.RequestID, r.header.Get("request-id"))
	}
	if e.Error.InnerError.Date == "" || e.Error.InnerError.ClientRequestID == "" {
		t.Fatalf("innerError lacks date or client-request-id: %s", r.body)
	}
	return e.Error.Code
}

// call makes one Graph request; an empty token sends no Authorization.
func call(t *testing.T, method, u, token string, body any) result {
	t.Helper()
	r, err := tryCall(context.Background(), method, u, token, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return r
}

func tryCall(ctx context.Context, method, u, token string, body any) (result, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return result{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return result{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, err
	}
	return result{resp.StatusCode, resp.Header, b}, nil
}

func groupBody(groupID string) map[string]any {
	return map[string]any{
		"@odata.type": "#microsoft.graph.deviceConfigurationAssignment",
		"target": map[string]any{
			"@odata.type": "#microsoft.graph.groupAssignmentTarget",
			"groupId":     groupID,
		},
	}
}

const (
	cfgA = "11111111-2222-4333-8444-555555555555"
	cfgB = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
)

func groupN(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }
