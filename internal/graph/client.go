// Package graph is bulkassign's Microsoft Graph client for device
// configuration assignments: list, create and delete on the eight assignment
// paths, one request at a time, with every answer reduced to a Response that
// the policy table (policy.go) classifies. It does no retrying of its own
// beyond renewing a rejected token once: retries are the worker's decision,
// made with the row's state in hand.
package graph

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/backoff"
	"github.com/bulkassign/bulkassign/internal/text"
)

// TokenSource hands out access tokens for Graph.
type TokenSource interface {
	// Token returns a valid access token. Fresh bypasses any cache; Claims
	// carries a claims challenge from Graph's WWW-Authenticate header.
	Token(ctx context.Context, opts TokenOptions) (string, error)
}

// TokenOptions qualifies a token request.
type TokenOptions struct {
	Fresh  bool
	Claims string
}

// ErrSignInAgain is wrapped by token sources whose sign-in can no longer be
// renewed without a person (an expired or revoked refresh token).
var ErrSignInAgain = errors.New("sign in again: the stored sign-in has expired or was revoked (run `worker login`)")

// ErrSignInRefused is wrapped by token sources whose tenant refuses the app
// for good: consent missing (AADSTS700016, AADSTS65001), tenant not found
// (AADSTS90002), app disabled (AADSTS7000112). No retry fixes it; the
// tenant's rows end failed at once.
var ErrSignInRefused = errors.New("the tenant refuses this app")

// ErrTokenAcquisition is wrapped by a Response's Err when no token could
// be had: the request was never sent. A sign-in that needs a person wraps
// ErrSignInAgain besides.
var ErrTokenAcquisition = errors.New("error acquiring token")

// Options configures a Client.
type Options struct {
	// BaseURL is the Graph root including its version, e.g.
	// https://graph.microsoft.com/beta.
	BaseURL string
	Tokens  TokenSource
	// HTTPClient defaults to a client with sensible transport timeouts.
	HTTPClient *http.Client
	// Timeout bounds each request (not each page of a list); default
	// DefaultTimeout.
	Timeout time.Duration
	// UserAgent is sent on every request.
	UserAgent string
	// Observe, when set, is called after every Graph request (for metrics
	// and logs). It must not block.
	Observe func(*Response)
	// MaxListBytes bounds the bytes of all the pages of one list read
	// together (GRAPH_MAX_LIST_BYTES); default DefaultMaxListBytes.
	MaxListBytes int64
}

// DefaultTimeout bounds one Graph request unless GRAPH_TIMEOUT says
// otherwise.
const DefaultTimeout = 30 * time.Second

// Client talks to Graph.
type Client struct {
	base    *url.URL
	opts    Options
	http    *http.Client
	observe func(*Response)
}

// New validates the options. Graph must be https, except on loopback
// addresses (the simulator in tests).
func New(opts Options) (*Client, error) {
	u, err := CheckURL("GRAPH_BASE_URL", opts.BaseURL)
	if err != nil {
		return nil, err
	}
	if opts.Tokens == nil {
		return nil, errors.New("graph: no token source")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "bulkassign"
	}
	if opts.MaxListBytes <= 0 {
		opts.MaxListBytes = DefaultMaxListBytes
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = NewHTTPClient()
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{base: u, opts: opts, http: hc, observe: opts.Observe}, nil
}

// NewHTTPClient returns an HTTP client whose transport bounds every phase of
// a connection; request deadlines come from contexts. It keeps every
// connection a burst of requests opened (up to maxIdleConns): a worker
// runs up to WORKER_CONCURRENCY requests at once, and a connection closed
// because the idle pool was full costs the next request a TLS handshake
// (with the default pool of 2 a host, most of a worker's CPU, measured by
// bench section 2's profile).
func NewHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 60 * time.Second
	t.MaxIdleConns, t.MaxIdleConnsPerHost = maxIdleConns, maxIdleConns
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // Graph does not redirect these calls; never follow one with a token
	}}
}

// maxIdleConns bounds the connections a Graph client keeps open between
// requests: above the requests a worker has in flight at any concurrency
// it is run at (a WORKER_CONCURRENCY above it only reopens the excess);
// idle ones close after the transport's 90 s.
const maxIdleConns = 1024

// CheckURL accepts https URLs, and http only for loopback hosts. name is the
// setting it came from, for the error.
func CheckURL(name, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%s %q is not an absolute URL", name, raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !IsLoopback(u.Hostname()) {
			return nil, fmt.Errorf("%s %q must use https (http is allowed only on loopback addresses)", name, raw)
		}
	default:
		return nil, fmt.Errorf("%s %q must use https", name, raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%s %q must not carry credentials, a query or a fragment", name, raw)
	}
	return u, nil
}

// IsLoopback reports whether host names this machine.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Origin is the scheme and host of the Graph root: the token scope is
// Origin() + "/.default".
func (c *Client) Origin() string { return c.base.Scheme + "://" + c.base.Host }

// Response is one Graph exchange reduced to what decides its fate.
type Response struct {
	Method          string
	Op              Op
	StatusCode      int // 0 when no response arrived
	RequestID       string
	ClientRequestID string
	RetryAfter      time.Duration // -1 when Graph sent none
	ErrorCode       string
	ErrorMessage    string
	Claims          string // claims challenge from WWW-Authenticate, if any
	Err             error  // transport or token error
	Sent            bool   // the request was written to the wire (a create may have applied)
	// Held is set when the request was never sent because the caller's
	// wait (the fleet's limit) declined or was interrupted.
	Held     *Hold
	Duration time.Duration
}

// Hold says why a request was held back before it left.
type Hold struct {
	// Delay is when the limit expects to admit it; 0 when unknown (a
	// shutdown).
	Delay time.Duration
}

// delayer is implemented by wait errors that know when to come back
// (ratelimit.WaitTooLongError).
type delayer interface{ RetryDelay() time.Duration }

// NotSent is the Response of a request of op held back by err, the error
// of the caller's wait: nothing reached Graph.
func NotSent(op Op, err error) *Response {
	h := &Hold{}
	var d delayer
	if errors.As(err, &d) {
		h.Delay = max(d.RetryDelay(), 0)
	}
	return &Response{Method: op.Method(), Op: op, Err: err, Held: h, RetryAfter: -1}
}

// Error describes a failed exchange without any secret in it.
func (r *Response) Error() string {
	if r.Err != nil {
		return fmt.Sprintf("%s %s: %v", r.Method, r.Op, r.Err)
	}
	s := fmt.Sprintf("%s %s: HTTP %d", r.Method, r.Op, r.StatusCode)
	if r.ErrorCode != "" {
		s += " " + r.ErrorCode
	}
	if r.ErrorMessage != "" {
		s += ": " + r.ErrorMessage
	}
	if r.RequestID != "" {
		s += " (request-id " + r.RequestID + ")"
	}
	return s
}

// Assignment is a deviceConfigurationAssignment as Graph returns it.
type Assignment struct {
	ID     string        `json:"id"`
	Target assign.Target `json:"target"`
	Source string        `json:"source,omitempty"`
	Intent string        `json:"intent,omitempty"`
}

// UnmarshalJSON reads an assignment as Graph returns it, its target in the
// same pass (assign.Wire) rather than in a second decoding of its own.
func (a *Assignment) UnmarshalJSON(b []byte) error {
	var w struct {
		ID     string       `json:"id"`
		Target *assign.Wire `json:"target"`
		Source string       `json:"source"`
		Intent string       `json:"intent"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*a = Assignment{ID: w.ID, Source: w.Source, Intent: w.Intent}
	if w.Target != nil {
		t, err := w.Target.Target()
		if err != nil {
			return err
		}
		a.Target = t
	}
	return nil
}

// maxBody bounds what is read of any answer.
const maxBody = 16 << 20

// DefaultMaxListBytes bounds the bytes of all the pages of one list read
// (each page also within maxBody) unless GRAPH_MAX_LIST_BYTES says
// otherwise: what one read holds in memory at once. At Graph's page sizes
// a configuration's assignments fill a few hundred KiB; 1,000 full pages
// would be 16 GiB.
const DefaultMaxListBytes = 64 << 20

// ErrListTooLarge is wrapped by a Response's Err when the pages of one
// list add up to more than the client's MaxListBytes: no retry makes the
// list smaller, so the rows that need it end failed.
var ErrListTooLarge = errors.New("list too large")

// MaxPages bounds the pages of one list: at Graph's page sizes it is far
// more assignments than a configuration can hold, and it stops a
// @odata.nextLink chain that never ends.
const MaxPages = 1000

// ListAssignments reads every assignment on a configuration path, following
// @odata.nextLink. wait, when set, is called before each page (the read
// limit). Targets of types bulkassign does not know are skipped.
func (c *Client) ListAssignments(ctx context.Context, cfgID string, p assign.Path, wait func(context.Context) error) ([]Assignment, *Response) {
	var out []Assignment
	resp := c.readPages(ctx, OpList, c.base.String()+p.AssignmentsPath(cfgID), "assignment list", wait, func(value []json.RawMessage) (bool, error) {
		for _, raw := range value {
			var a Assignment
			if err := json.Unmarshal(raw, &a); err != nil {
				continue // a target type we do not manage cannot match a row
			}
			out = append(out, a)
		}
		return true, nil
	})
	if resp.StatusCode != http.StatusOK || resp.Err != nil {
		return nil, resp
	}
	return out, resp
}

// readPages GETs first and every page its @odata.nextLink chain leads to,
// as op, handing each page's value to page, which returns false to stop
// reading (it has what it needs) or an error to fail the read. wait, when
// set, is called before each request. It returns the last page's Response:
// 200 without Err when every page was read (or page stopped), otherwise
// the request that failed, held back or could not be decoded. what names
// the collection in decoding errors.
func (c *Client) readPages(ctx context.Context, op Op, first, what string, wait func(context.Context) error, page func(value []json.RawMessage) (bool, error)) *Response {
	next := first
	seen := map[string]bool{}
	var total int64
	for pages := 0; ; pages++ {
		if pages == MaxPages || seen[next] {
			// A chain that loops (or never ends) is a Graph fault: retrying
			// later may find it mended.
			return &Response{Method: op.Method(), Op: op, RetryAfter: -1,
				Err: fmt.Errorf("@odata.nextLink chain loops or exceeds %d pages", MaxPages)}
		}
		seen[next] = true
		if wait != nil {
			if err := wait(ctx); err != nil {
				return NotSent(op, err)
			}
		}
		u, err := url.Parse(next)
		if err != nil || u.Scheme+"://"+u.Host != c.Origin() {
			// Never send the token to a host other than Graph's.
			return &Response{Method: op.Method(), Op: op, RetryAfter: -1, Err: fmt.Errorf("@odata.nextLink leaves %s", c.Origin())}
		}
		resp, body := c.do(ctx, op, next, nil, "")
		if resp.StatusCode != http.StatusOK {
			return resp
		}
		if total += int64(len(body)); total > c.opts.MaxListBytes {
			resp.Err = fmt.Errorf("%w: the %s's pages exceed %d bytes (GRAPH_MAX_LIST_BYTES) after %d pages",
				ErrListTooLarge, what, c.opts.MaxListBytes, pages+1)
			return resp
		}
		var pg struct {
			Value    []json.RawMessage `json:"value"`
			NextLink string            `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(body, &pg); err != nil {
			resp.Err = fmt.Errorf("error decoding %s: %w", what, err)
			return resp
		}
		more, err := page(pg.Value)
		if err != nil {
			resp.Err = fmt.Errorf("error decoding %s: %w", what, err)
			return resp
		}
		if next = pg.NextLink; next == "" || !more {
			return resp
		}
	}
}

// CreateAssignment posts one assignment. clientRequestID is sent as
// client-request-id so the attempt can be traced in Graph's logs.
func (c *Client) CreateAssignment(ctx context.Context, cfgID string, p assign.Path, t assign.Target, clientRequestID string) (*Assignment, *Response) {
	body, err := json.Marshal(struct {
		ODataType string      `json:"@odata.type"`
		Target    assign.Wire `json:"target"`
	}{"#microsoft.graph.deviceConfigurationAssignment", t.Wire()})
	if err != nil {
		return nil, &Response{Method: OpCreate.Method(), Op: OpCreate, Err: err, RetryAfter: -1}
	}
	resp, rb := c.do(ctx, OpCreate, c.base.String()+p.AssignmentsPath(cfgID), body, clientRequestID)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return nil, resp
	}
	var a Assignment
	if err := json.Unmarshal(rb, &a); err != nil || a.ID == "" {
		// Created, but we cannot tell its id: reconcile by reading.
		resp.Err = fmt.Errorf("error decoding created assignment: %v", err)
		resp.StatusCode = 0
		resp.Sent = true
		return nil, resp
	}
	return &a, resp
}

// DeleteAssignment removes one assignment.
func (c *Client) DeleteAssignment(ctx context.Context, cfgID string, p assign.Path, assignmentID, clientRequestID string) *Response {
	resp, _ := c.do(ctx, OpDelete, c.base.String()+p.AssignmentsPath(cfgID)+"/"+url.PathEscape(assignmentID), nil, clientRequestID)
	return resp
}

// do sends one request, renewing the token once on 401.
func (c *Client) do(ctx context.Context, op Op, u string, body []byte, clientRequestID string) (*Response, []byte) {
	if clientRequestID == "" {
		clientRequestID = NewRequestID()
	}
	resp, rb := c.send(ctx, op, u, body, clientRequestID, TokenOptions{})
	if resp.StatusCode == http.StatusUnauthorized {
		// A token can be revoked long before it expires (continuous access
		// evaluation): renew it, bypassing the cache, once.
		resp, rb = c.send(ctx, op, u, body, clientRequestID, TokenOptions{Fresh: true, Claims: resp.Claims})
	}
	return resp, rb
}

func (c *Client) send(ctx context.Context, op Op, u string, body []byte, clientRequestID string, topts TokenOptions) (*Response, []byte) {
	start := time.Now()
	resp := &Response{Method: op.Method(), Op: op, ClientRequestID: clientRequestID, RetryAfter: -1}
	defer func() {
		resp.Duration = time.Since(start)
		if c.observe != nil {
			c.observe(resp)
		}
	}()
	token, err := c.opts.Tokens.Token(ctx, topts)
	if err != nil {
		resp.Err = fmt.Errorf("%w: %w", ErrTokenAcquisition, err)
		if ctx.Err() != nil {
			resp.Held = &Hold{} // shutting down before the request left
		}
		return resp, nil
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteHeaders: func() { resp.Sent = true }})
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, resp.Method, u, rd)
	if err != nil {
		resp.Err = err
		return resp, nil
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("client-request-id", clientRequestID)
	req.Header.Set("return-client-request-id", "true")
	req.Header.Set("User-Agent", c.opts.UserAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hr, err := c.http.Do(req)
	if err != nil {
		resp.Err = scrubURLError(err)
		if !resp.Sent && parent.Err() != nil {
			resp.Held = &Hold{} // shutting down before the request left
		}
		return resp, nil
	}
	defer hr.Body.Close()
	resp.StatusCode = hr.StatusCode
	resp.RequestID = text.Short(hr.Header.Get("request-id"))
	if id := hr.Header.Get("client-request-id"); id != "" {
		resp.ClientRequestID = text.Short(id)
	}
	resp.RetryAfter = ParseRetryAfter(hr.Header.Get("Retry-After"), time.Now())
	rb, err := io.ReadAll(io.LimitReader(hr.Body, maxBody))
	if err != nil {
		// The status arrived but the body did not: for a create that may
		// have applied, this is as ambiguous as a lost answer.
		resp.Err = fmt.Errorf("error reading response body: %w", scrubURLError(err))
		if hr.StatusCode < 300 {
			resp.StatusCode = 0
		}
		return resp, nil
	}
	if hr.StatusCode >= 400 {
		resp.ErrorCode, resp.ErrorMessage = parseError(rb)
		if resp.RequestID == "" {
			resp.RequestID = innerRequestID(rb)
		}
		if hr.StatusCode == http.StatusUnauthorized {
			resp.Claims = ParseClaimsChallenge(hr.Header.Values("WWW-Authenticate"))
		}
	}
	return resp, rb
}

// scrubURLError drops the URL wrapper (query strings could carry skip tokens;
// no credential is ever in a URL, but the message is shorter without).
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

func parseError(b []byte) (code, msg string) {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
		return text.Short(e.Error.Code), text.Message(e.Error.Message)
	}
	return "", text.Bound(strings.TrimSpace(string(b)), 300)
}

func innerRequestID(b []byte) string {
	var e struct {
		Error struct {
			Inner struct {
				RequestID string `json:"request-id"`
			} `json:"innerError"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	return text.Short(e.Error.Inner.RequestID)
}

// MaxRetryAfter caps what a Retry-After may ask for (backoff.MaxWait):
// Intune's windows are 20 s long; a server asking for more (a date in year
// 9999, a misconfigured proxy) is answered by trying again after the cap,
// which costs at most one more 429, instead of pausing the fleet for ever.
const MaxRetryAfter = backoff.MaxWait

// ParseRetryAfter reads a Retry-After header in seconds or as an HTTP date,
// clamped to [0, MaxRetryAfter]. It returns -1 when the header is absent or
// unreadable.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return -1
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		if n < 0 || math.IsNaN(n) {
			return -1
		}
		if n >= MaxRetryAfter.Seconds() {
			return MaxRetryAfter
		}
		return time.Duration(n * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		// Compare before subtracting: Sub saturates, but say so plainly.
		if t.After(now.Add(MaxRetryAfter)) {
			return MaxRetryAfter
		}
		return max(t.Sub(now), 0)
	}
	return -1
}

// ParseClaimsChallenge extracts claims="..." from a Bearer challenge with
// error="insufficient_claims" (continuous access evaluation). Graph sends
// the claims base64-encoded; MSAL wants the JSON itself, so it is decoded.
func ParseClaimsChallenge(values []string) string {
	for _, v := range values {
		params := parseAuthParams(v)
		c := params["claims"]
		if params["error"] != "insufficient_claims" || c == "" {
			continue
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(c); err == nil && json.Valid(b) {
				return string(b)
			}
		}
		if json.Valid([]byte(c)) {
			return c
		}
	}
	return ""
}

func parseAuthParams(v string) map[string]string {
	out := map[string]string{}
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, ' '); i > 0 && !strings.Contains(v[:i], "=") {
		v = v[i+1:] // the scheme
	}
	for v != "" {
		v = strings.TrimLeft(v, " ,")
		eq := strings.IndexByte(v, '=')
		if eq < 0 {
			break
		}
		key := strings.ToLower(strings.TrimSpace(v[:eq]))
		v = v[eq+1:]
		var val string
		if strings.HasPrefix(v, `"`) {
			end := strings.IndexByte(v[1:], '"')
			if end < 0 {
				val, v = v[1:], ""
			} else {
				val, v = v[1:end+1], v[end+2:]
			}
		} else {
			end := strings.IndexByte(v, ',')
			if end < 0 {
				val, v = v, ""
			} else {
				val, v = v[:end], v[end:]
			}
		}
		out[key] = strings.TrimSpace(val)
	}
	return out
}

// NewRequestID returns a fresh GUID for client-request-id.
func NewRequestID() string { return assign.NewID() }

// Organization reads the signed-in tenant's id and display name (GET
// /organization), for a preflight to name the tenant it reached.
func (c *Client) Organization(ctx context.Context) (id, name string, resp *Response) {
	resp, body := c.do(ctx, OpList, c.base.String()+"/organization?$select=id,displayName", nil, "")
	if resp.StatusCode != http.StatusOK {
		return "", "", resp
	}
	var page struct {
		Value []struct {
			ID          string `json:"id"`
			DisplayName string `json:"displayName"`
		} `json:"value"`
	}
	if err := json.Unmarshal(body, &page); err != nil || len(page.Value) == 0 {
		resp.Err = fmt.Errorf("error decoding organization: %v", err)
		return "", "", resp
	}
	return text.Short(page.Value[0].ID), text.Short(page.Value[0].DisplayName), resp
}

// ProbeConfigurations reads one device configuration (GET
// deviceConfigurations?$top=1): the read a preflight does to prove the
// token may read what the workers will write.
func (c *Client) ProbeConfigurations(ctx context.Context) *Response {
	resp, _ := c.do(ctx, OpList, c.base.String()+"/deviceManagement/deviceConfigurations?$top=1&$select=id", nil, "")
	return resp
}

// PolicyKind is a kind of Intune policy that bulkassign does not assign:
// its Graph collection under deviceManagement and what an admin calls it.
type PolicyKind struct {
	Collection string
	Name       string
}

// UnsupportedKinds are the kinds an id that is not a device configuration
// is looked up in (GetPolicy), in this order, to say what it is instead.
var UnsupportedKinds = []PolicyKind{
	{"configurationPolicies", "a Settings Catalog policy"},
	{"deviceCompliancePolicies", "a compliance policy"},
	{"groupPolicyConfigurations", "an administrative template"},
}

// GetPolicy reads the policy id of kind (GET
// deviceManagement/{collection}/{id}?$select=id): 200 when it exists, 404
// when no policy of that kind has the id.
func (c *Client) GetPolicy(ctx context.Context, kind PolicyKind, id string) *Response {
	resp, _ := c.do(ctx, OpProbe, c.base.String()+"/deviceManagement/"+kind.Collection+"/"+url.PathEscape(id)+"?$select=id", nil, "")
	return resp
}
