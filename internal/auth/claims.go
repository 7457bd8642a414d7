package auth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
)

// TokenClaims are the claims of an access token a preflight reports. The
// token is read, not verified: Graph verifies it; this only says what it
// carries.
type TokenClaims struct {
	TenantID string   `json:"tid"`
	AppID    string   `json:"appid"`
	Roles    []string `json:"roles"` // application permissions
	Scope    string   `json:"scp"`   // delegated permissions, space-separated
}

// ReadClaims decodes the claims of a JWT access token.
func ReadClaims(token string) (TokenClaims, error) {
	var c TokenClaims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, errors.New("the access token is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return c, errors.New("the access token's claims are not base64url")
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, errors.New("the access token's claims are not JSON")
	}
	if c.AppID == "" {
		var v2 struct {
			AZP string `json:"azp"`
		}
		_ = json.Unmarshal(b, &v2)
		c.AppID = v2.AZP
	}
	return c, nil
}

// Permissions lists what the token grants: its roles (app sign-in) or its
// scopes (delegated).
func (c TokenClaims) Permissions() []string {
	if len(c.Roles) > 0 {
		return c.Roles
	}
	return strings.Fields(c.Scope)
}

// Grants reports whether the token carries permission.
func (c TokenClaims) Grants(permission string) bool {
	return slices.ContainsFunc(c.Permissions(), func(p string) bool { return strings.EqualFold(p, permission) })
}
