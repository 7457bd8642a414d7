// Package config reads bulkassign's settings from the environment. Every
// error names the variable, so the commands can print it as one line and
// exit 2.
package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bulkassign/bulkassign/internal/graph"
)

// Cloud is a Microsoft cloud: its Graph root and authority host go together.
type Cloud struct {
	Name          string
	GraphRoot     string // without version
	AuthorityHost string
}

// Clouds are the national clouds GRAPH_CLOUD selects.
var Clouds = map[string]Cloud{
	"global":   {"global", "https://graph.microsoft.com", "https://login.microsoftonline.com"},
	"usgov":    {"usgov", "https://graph.microsoft.us", "https://login.microsoftonline.us"},
	"usgovdod": {"usgovdod", "https://dod-graph.microsoft.us", "https://login.microsoftonline.us"},
	"china":    {"china", "https://microsoftgraph.chinacloudapi.cn", "https://login.chinacloudapi.cn"},
}

// Env looks a variable up; os.LookupEnv in production, a map in tests.
type Env func(string) (string, bool)

// MapEnv adapts a map.
func MapEnv(m map[string]string) Env {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Error is a bad setting.
type Error struct {
	Var, Msg string
}

func (e *Error) Error() string { return e.Var + ": " + e.Msg }

// Database is what every command needs.
type Database struct {
	URL string
}

// LoadDatabase reads DATABASE_URL.
func LoadDatabase(env Env) (Database, error) {
	v, _ := env("DATABASE_URL")
	if strings.TrimSpace(v) == "" {
		return Database{}, &Error{"DATABASE_URL", "is not set (e.g. postgres://postgres@127.0.0.1:5432/bulkassign)"}
	}
	return Database{URL: v}, nil
}

// Graph is what talking to Graph needs.
type Graph struct {
	Cloud               Cloud
	BaseURL             string // Graph root with version
	AuthorityHost       string
	TenantID            string
	ClientID            string
	ClientSecret        string
	CertificatePath     string
	CertificatePassword string
	Timeout             time.Duration
}

// Scope is the token scope for BaseURL's origin.
func (g Graph) Scope() string {
	u, err := graph.CheckURL("GRAPH_BASE_URL", g.BaseURL)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host + "/.default"
}

// LoadGraph reads the Graph and sign-in settings. needCredential is false
// for commands that only need to know where Graph is.
func LoadGraph(env Env, needCredential bool) (Graph, error) {
	var g Graph
	cloudName := get(env, "GRAPH_CLOUD", "global")
	cloud, ok := Clouds[strings.ToLower(cloudName)]
	if !ok {
		return g, &Error{"GRAPH_CLOUD", fmt.Sprintf("%q is not one of global, usgov, usgovdod, china", cloudName)}
	}
	g.Cloud = cloud
	g.BaseURL = strings.TrimSuffix(get(env, "GRAPH_BASE_URL", cloud.GraphRoot+"/beta"), "/")
	if _, err := graph.CheckURL("GRAPH_BASE_URL", g.BaseURL); err != nil {
		return g, &Error{"GRAPH_BASE_URL", strings.TrimPrefix(err.Error(), "GRAPH_BASE_URL ")}
	}
	g.AuthorityHost = strings.TrimSuffix(get(env, "AZURE_AUTHORITY_HOST", cloud.AuthorityHost), "/")
	if u, err := graph.CheckURL("AZURE_AUTHORITY_HOST", g.AuthorityHost); err != nil {
		return g, &Error{"AZURE_AUTHORITY_HOST", strings.TrimPrefix(err.Error(), "AZURE_AUTHORITY_HOST ")}
	} else if u.Scheme != "https" {
		// MSAL insists on https authorities, loopback included.
		return g, &Error{"AZURE_AUTHORITY_HOST", fmt.Sprintf("%q must use https", g.AuthorityHost)}
	}
	var err error
	if g.Timeout, err = duration(env, "GRAPH_TIMEOUT", 30*time.Second); err != nil {
		return g, err
	}
	g.TenantID = get(env, "AZURE_TENANT_ID", "")
	g.ClientID = get(env, "AZURE_CLIENT_ID", "")
	g.ClientSecret = get(env, "AZURE_CLIENT_SECRET", "")
	g.CertificatePath = get(env, "AZURE_CLIENT_CERTIFICATE_PATH", "")
	g.CertificatePassword = get(env, "AZURE_CLIENT_CERTIFICATE_PASSWORD", "")
	if !needCredential {
		return g, nil
	}
	if g.TenantID == "" {
		return g, &Error{"AZURE_TENANT_ID", "is not set (the directory (tenant) id of the app registration)"}
	}
	if strings.ContainsAny(g.TenantID, "/?#@ ") {
		return g, &Error{"AZURE_TENANT_ID", fmt.Sprintf("%q is not a tenant id or domain", g.TenantID)}
	}
	if g.ClientID == "" {
		return g, &Error{"AZURE_CLIENT_ID", "is not set (the application (client) id of the app registration)"}
	}
	if g.ClientSecret == "" && g.CertificatePath == "" {
		return g, &Error{"AZURE_CLIENT_SECRET", "neither AZURE_CLIENT_SECRET nor AZURE_CLIENT_CERTIFICATE_PATH is set"}
	}
	return g, nil
}

// Worker holds the worker's tuning.
type Worker struct {
	WriteRate   float64
	ReadRate    float64
	Concurrency int
	Patience    time.Duration
	MaxErrors   int
	JobTimeout  time.Duration
	RescueAfter time.Duration
	HTTPAddr    string
}

// LoadWorker reads the worker's tuning settings.
func LoadWorker(env Env) (Worker, error) {
	var w Worker
	var err error
	if w.WriteRate, err = float(env, "GRAPH_WRITE_RATE", 5); err != nil {
		return w, err
	}
	if w.ReadRate, err = float(env, "GRAPH_READ_RATE", 50); err != nil {
		return w, err
	}
	if w.Concurrency, err = integer(env, "WORKER_CONCURRENCY", 20); err != nil {
		return w, err
	}
	if w.Patience, err = duration(env, "GRAPH_PATIENCE", 6*time.Hour); err != nil {
		return w, err
	}
	if w.MaxErrors, err = integer(env, "GRAPH_MAX_ERRORS", 8); err != nil {
		return w, err
	}
	if w.JobTimeout, err = duration(env, "WORKER_JOB_TIMEOUT", 45*time.Second); err != nil {
		return w, err
	}
	if w.RescueAfter, err = duration(env, "WORKER_RESCUE_AFTER", w.JobTimeout+30*time.Second); err != nil {
		return w, err
	}
	if w.RescueAfter <= w.JobTimeout {
		return w, &Error{"WORKER_RESCUE_AFTER", fmt.Sprintf("%s must exceed WORKER_JOB_TIMEOUT (%s)", w.RescueAfter, w.JobTimeout)}
	}
	w.HTTPAddr = get(env, "WORKER_HTTP_ADDR", "127.0.0.1:8080")
	return w, nil
}

func get(env Env, k, def string) string {
	if v, ok := env(k); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

func float(env Env, k string, def float64) (float64, error) {
	v := get(env, k, "")
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 10000 {
		return 0, &Error{k, fmt.Sprintf("%q is not a number of requests per second (0 turns the limit off)", v)}
	}
	return f, nil
}

func integer(env Env, k string, def int) (int, error) {
	v := get(env, k, "")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, &Error{k, fmt.Sprintf("%q is not a positive whole number", v)}
	}
	return n, nil
}

func duration(env Env, k string, def time.Duration) (time.Duration, error) {
	v := get(env, k, "")
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, &Error{k, fmt.Sprintf("%q is not a positive duration (e.g. 30s, 5m, 6h)", v)}
	}
	return d, nil
}
