package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	nethttplibrary "github.com/microsoft/kiota-http-go"

	"github.com/bulkassign/bulkassign/internal/assign"
	"github.com/bulkassign/bulkassign/internal/auth"
	"github.com/bulkassign/bulkassign/internal/graph"
	"github.com/bulkassign/bulkassign/internal/graphsim"
	"github.com/bulkassign/bulkassign/internal/testenv"
)

// kiotaInFlight is how many requests the peer keeps in flight.
const kiotaInFlight = 4

// kiotaClient is the HTTP client the Graph Go SDK (msgraph-sdk-go) sends
// through: kiota-http-go's default middleware chain (retry, redirect,
// compression, parameter-name decoding, user agent, headers inspection)
// around a transport that trusts the simulator's CA.
//
// Request-body compression is switched off: Graph accepts gzip bodies but
// the simulator does not decode them (it would answer 400, not the 415
// that makes the handler resend plainly). It plays no part in retrying.
func kiotaClient() (*http.Client, error) {
	pool, err := graphsim.CertPool()
	if err != nil {
		return nil, err
	}
	mws, err := nethttplibrary.GetDefaultMiddlewaresWithOptions(nethttplibrary.NewCompressionOptionsReference(false))
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{
		Transport: nethttplibrary.NewCustomTransportWithParentTransport(tr, mws...),
		// As nethttplibrary.GetDefaultClient sets them.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       100 * time.Second,
	}, nil
}

// kiotaLimited is the peer row: the naive loop a Go user would write with
// the SDK today — POST each row, trust the answer — with kiotaInFlight
// rows in flight, against the same limited (and faulty) tenant as ours.
func kiotaLimited(ctx context.Context, o options, faults bool) (limitRun, error) {
	rows, configs := o.limitRows, o.limitConfigs
	sim, simStart, err := newLimitedSim(configs, faults)
	if err != nil {
		return limitRun{}, err
	}
	defer sim.Close()
	tokens, err := auth.NewApp(auth.AppConfig{AuthorityHost: sim.AuthorityHost(), TenantID: sim.TenantID(),
		ClientID: graphsim.DefaultClientID, Secret: graphsim.DefaultClientSecret, Scope: sim.Scope()})
	if err != nil {
		return limitRun{}, err
	}
	token, err := tokens.Token(ctx, graph.TokenOptions{})
	if err != nil {
		return limitRun{}, err
	}
	hc, err := kiotaClient()
	if err != nil {
		return limitRun{}, err
	}
	defer hc.CloseIdleConnections()

	specs := make([]assign.Spec, rows)
	for i := range specs {
		specs[i] = assign.Spec{ConfigurationID: testenv.Config(i % configs), Target: assign.Target{Type: assign.TargetGroup, GroupID: testenv.Group(i)}}
	}
	reports := make([]report, rows)
	next := make(chan int)
	runCtx, cancel := context.WithTimeout(ctx, o.runTimeout)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for range kiotaInFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				id, ok := naivePost(runCtx, hc, sim.GraphBaseURL(), token, specs[i])
				reports[i] = report{spec: specs[i], created: ok, assignmentID: id}
			}
		}()
	}
	lr := limitRun{who: fmt.Sprintf("Graph SDK default pipeline (kiota-http-go), %d in flight", kiotaInFlight), rows: rows, pairs: configs}
feed:
	for i := range specs {
		select {
		case next <- i:
		case <-runCtx.Done():
			lr.timeout = ctx.Err() == nil
			for j := i; j < rows; j++ {
				reports[j] = report{spec: specs[j]}
			}
			break feed
		}
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return limitRun{}, ctx.Err()
	}
	lr.elapsed = time.Since(start)
	lr.finish(sim, simStart, reports)
	return lr, nil
}

// naivePost creates one assignment and believes the answer: 201 is
// created, anything else (after the pipeline's own retries) is failed.
func naivePost(ctx context.Context, hc *http.Client, base, token string, s assign.Spec) (string, bool) {
	body, err := json.Marshal(map[string]any{"@odata.type": "#microsoft.graph.deviceConfigurationAssignment", "target": s.Target})
	if err != nil {
		return "", false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+s.Path.AssignmentsPath(s.ConfigurationID), nil)
	if err != nil {
		return "", false
	}
	// The SDK's request adapter hands the pipeline a seekable body of
	// known length, which is what lets its RetryHandler resend a POST.
	req.Body = nethttplibrary.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return "", false
	}
	var created struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(b, &created) != nil || created.ID == "" {
		return "", false
	}
	return created.ID, true
}
