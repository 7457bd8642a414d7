package config

import (
	"fmt"
	"net/url"
	"strings"
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
