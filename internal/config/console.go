package config

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Web sign-in methods CONSOLE_SIGNIN selects: who may open the console and
// River UI on WORKER_HTTP_ADDR.
const (
	// WebSignInNone: no sign-in; only allowed on a loopback address.
	WebSignInNone = "none"
	// WebSignInBasic: basic auth with WORKER_HTTP_USER and
	// WORKER_HTTP_PASSWORD.
	WebSignInBasic = "basic"
	// WebSignInEntra: Microsoft Entra ID sign-in (OpenID Connect,
	// authorization code with PKCE) through the app registration; members
	// of CONSOLE_ENTRA_GROUP or holders of CONSOLE_ENTRA_ROLE may enter.
	WebSignInEntra = "entra"
)

// Console holds the web console's sign-in settings.
type Console struct {
	// SignIn is WebSignInNone, WebSignInBasic or WebSignInEntra.
	SignIn string
	// URL is the worker's public address as browsers reach it (scheme,
	// host, port; no path): the sign-in's redirect URI is URL +
	// "/auth/callback". "" means http:// + WORKER_HTTP_ADDR.
	URL string
	// SecureCookies marks cookies Secure (sent over HTTPS only): on when URL
	// is https, or when CONSOLE_SECURE_COOKIES=true (TLS ends at a proxy).
	SecureCookies bool
	// AllowPlainHTTP (CONSOLE_ALLOW_PLAIN_HTTP=true) lets basic auth run
	// over plain HTTP off loopback, which the worker otherwise refuses: the
	// password and the session cookie then cross the network in clear.
	AllowPlainHTTP bool
	// EntraGroup is the object id of the Entra group whose members may
	// enter; EntraRole the app role value whose holders may. One is needed
	// for Entra sign-in; either admits.
	EntraGroup, EntraRole string

	// The spool holds each upload between its review (or schedule
	// preview) and its enqueue (or save). SpoolDir (CONSOLE_SPOOL_DIR) is
	// where the console makes its own directory, removed at shutdown; ""
	// is the system's temporary directory.
	SpoolDir string
	// MaxUpload bounds one uploaded list (CONSOLE_MAX_UPLOAD).
	MaxUpload int64
	// SpoolUserBytes and SpoolUserFiles bound what one person's uploads
	// hold in the spool (CONSOLE_SPOOL_USER_MAX, CONSOLE_SPOOL_USER_FILES):
	// a new upload past them evicts that person's oldest review.
	SpoolUserBytes int64
	SpoolUserFiles int
	// SpoolBytes bounds the whole spool (CONSOLE_SPOOL_MAX): an upload
	// past it is refused, and nobody else's review is evicted.
	SpoolBytes int64
	// ReviewTTL is how long a review (or preview) may be enqueued (or
	// saved) before the console removes its file (CONSOLE_REVIEW_TTL).
	ReviewTTL time.Duration
	// ScheduleMax bounds a schedule's list (BULKASSIGN_SCHEDULE_MAX),
	// saved from the console or `enqueue schedule add`: every run reads it
	// whole.
	ScheduleMax int64
}

// ScheduleMaxVar bounds a schedule's list, for the console and the command.
const ScheduleMaxVar = "BULKASSIGN_SCHEDULE_MAX"

// ScheduleMax reads BULKASSIGN_SCHEDULE_MAX.
func ScheduleMax(env Env) (int64, error) {
	return size(env, ScheduleMaxVar, Defaults.Console.ScheduleMax)
}

// FormatSize writes n bytes as the size settings take it (e.g. 128MiB).
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		n int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.n && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

// size reads a positive number of bytes: plain, or with KiB, MiB or GiB.
func size(env Env, k string, def int64) (int64, error) {
	v := get(env, k, "")
	if v == "" {
		return def, nil
	}
	num, mult := v, int64(1)
	for _, u := range []struct {
		s string
		n int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(v, u.s) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(v, u.s)), u.n
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mult {
		return 0, &Error{k, fmt.Sprintf("%q is not a size: give bytes, or a whole number of KiB, MiB or GiB (e.g. 512MiB)", v)}
	}
	return n * mult, nil
}

// loadSpool reads the spool's and the schedule list's bounds, each at
// most the one that holds it.
func loadSpool(env Env, c *Console) error {
	var err error
	d := Defaults.Console
	c.SpoolDir = get(env, "CONSOLE_SPOOL_DIR", d.SpoolDir)
	if c.MaxUpload, err = size(env, "CONSOLE_MAX_UPLOAD", d.MaxUpload); err != nil {
		return err
	}
	if c.SpoolUserBytes, err = size(env, "CONSOLE_SPOOL_USER_MAX", d.SpoolUserBytes); err != nil {
		return err
	}
	if c.SpoolUserFiles, err = integer(env, "CONSOLE_SPOOL_USER_FILES", d.SpoolUserFiles); err != nil {
		return err
	}
	if c.SpoolBytes, err = size(env, "CONSOLE_SPOOL_MAX", d.SpoolBytes); err != nil {
		return err
	}
	if c.ReviewTTL, err = duration(env, "CONSOLE_REVIEW_TTL", d.ReviewTTL); err != nil {
		return err
	}
	if c.ScheduleMax, err = ScheduleMax(env); err != nil {
		return err
	}
	for _, b := range []struct {
		k, over string
		n, max  int64
	}{
		{"CONSOLE_MAX_UPLOAD", "CONSOLE_SPOOL_USER_MAX", c.MaxUpload, c.SpoolUserBytes},
		{ScheduleMaxVar, "CONSOLE_SPOOL_USER_MAX", c.ScheduleMax, c.SpoolUserBytes},
		{"CONSOLE_SPOOL_USER_MAX", "CONSOLE_SPOOL_MAX", c.SpoolUserBytes, c.SpoolBytes},
	} {
		if b.n > b.max {
			return &Error{b.k, fmt.Sprintf("%s exceeds %s (%s): a list that large could never be held; raise %s or lower %s",
				FormatSize(b.n), b.over, FormatSize(b.max), b.over, b.k)}
		}
	}
	return nil
}

// loadConsole reads the CONSOLE_* settings; user says whether
// WORKER_HTTP_USER is set (basic auth is then the default).
func loadConsole(env Env, user bool) (Console, error) {
	var c Console
	def := WebSignInNone
	if user {
		def = WebSignInBasic
	}
	c.SignIn = strings.ToLower(get(env, "CONSOLE_SIGNIN", def))
	switch c.SignIn {
	case WebSignInNone, WebSignInBasic, WebSignInEntra:
	default:
		return c, &Error{"CONSOLE_SIGNIN", fmt.Sprintf("%q is not one of none, basic, entra", c.SignIn)}
	}
	if c.SignIn == WebSignInBasic && !user {
		return c, &Error{"CONSOLE_SIGNIN", "basic needs WORKER_HTTP_USER and WORKER_HTTP_PASSWORD"}
	}
	c.URL = strings.TrimSuffix(get(env, "CONSOLE_URL", ""), "/")
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return c, &Error{"CONSOLE_URL", fmt.Sprintf("%q is not an http(s) address without a path (e.g. https://bulkassign.contoso.com)", c.URL)}
		}
		c.SecureCookies = u.Scheme == "https"
	}
	switch v := strings.ToLower(get(env, "CONSOLE_SECURE_COOKIES", "")); v {
	case "":
	case "true", "1", "yes":
		c.SecureCookies = true
	case "false", "0", "no":
		c.SecureCookies = false
	default:
		return c, &Error{"CONSOLE_SECURE_COOKIES", fmt.Sprintf("%q is not true or false", v)}
	}
	switch v := strings.ToLower(get(env, "CONSOLE_ALLOW_PLAIN_HTTP", "false")); v {
	case "true", "1", "yes":
		c.AllowPlainHTTP = true
	case "false", "0", "no":
	default:
		return c, &Error{"CONSOLE_ALLOW_PLAIN_HTTP", fmt.Sprintf("%q is not true or false", v)}
	}
	if err := loadSpool(env, &c); err != nil {
		return c, err
	}
	c.EntraGroup = get(env, "CONSOLE_ENTRA_GROUP", "")
	c.EntraRole = get(env, "CONSOLE_ENTRA_ROLE", "")
	if c.SignIn == WebSignInEntra {
		if c.EntraGroup == "" && c.EntraRole == "" {
			return c, &Error{"CONSOLE_ENTRA_GROUP", "Entra sign-in (CONSOLE_SIGNIN=entra) needs CONSOLE_ENTRA_GROUP (a group's object id) or CONSOLE_ENTRA_ROLE (an app role's value): who may enter"}
		}
		if get(env, "AZURE_CLIENT_SECRET", "") == "" {
			return c, &Error{"AZURE_CLIENT_SECRET", "Entra sign-in (CONSOLE_SIGNIN=entra) redeems the sign-in code with the app registration's client secret: set AZURE_CLIENT_SECRET"}
		}
	}
	return c, nil
}
