// Package metrics is a small Prometheus registry: labelled counters,
// histograms and gauges computed at scrape time, written in the text
// exposition format (version 0.0.4). The worker has a handful of metrics;
// this is all of the client library it needs, without its dependencies.
package metrics

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ContentType is the text exposition format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Registry holds metric families in registration order.
type Registry struct {
	mu       sync.Mutex
	families []family
	names    map[string]bool
	// ScrapeTimeout bounds the gauge functions of one scrape; default 2 s.
	ScrapeTimeout time.Duration
	// OnError, when set, is told of a gauge function that failed (its
	// family is left out of that scrape).
	OnError func(name string, err error)
}

// New returns an empty registry.
func New() *Registry { return &Registry{names: map[string]bool{}} }

type family interface {
	name() string
	write(ctx context.Context, w *bufio.Writer) error
}

func (r *Registry) register(f family) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.names[f.name()] {
		panic("metrics: " + f.name() + " registered twice")
	}
	r.names[f.name()] = true
	r.families = append(r.families, f)
}

// WriteTo writes every family. A failing gauge function is left out (and
// reported to OnError) rather than failing the scrape.
func (r *Registry) WriteTo(ctx context.Context, out io.Writer) error {
	r.mu.Lock()
	fams := slices.Clone(r.families)
	r.mu.Unlock()
	timeout := r.ScrapeTimeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	w := bufio.NewWriter(out)
	for _, f := range fams {
		if err := f.write(ctx, w); err != nil {
			if r.OnError != nil {
				r.OnError(f.name(), err)
			}
		}
	}
	return w.Flush()
}

// ServeHTTP serves the registry as a scrape target.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", ContentType)
	_ = r.WriteTo(req.Context(), w)
}

// labelKey joins label values; \xff cannot occur in UTF-8 text.
func labelKey(values []string) string { return strings.Join(values, "\xff") }

func header(w *bufio.Writer, name, help, typ string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
}

var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
var valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escapeHelp(s string) string { return helpEscaper.Replace(s) }

// labels renders {a="x",b="y"} (empty for no labels), with extra pairs
// appended (the histogram's le).
func labels(names, values []string, extra ...string) string {
	if len(names) == 0 && len(extra) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n + `="` + valueEscaper.Replace(values[i]) + `"`)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.WriteString(extra[i] + `="` + valueEscaper.Replace(extra[i+1]) + `"`)
	}
	b.WriteByte('}')
	return b.String()
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// series is one labelled value set of a family.
type series[T any] struct {
	values []string
	v      T
}

// vec keeps a family's series by label values, written in sorted order so
// scrapes are stable.
type vec[T any] struct {
	mu     sync.Mutex
	labels []string
	m      map[string]*series[T]
	newT   func() T
}

func (v *vec[T]) with(values []string, fn func(*T)) {
	if len(values) != len(v.labels) {
		panic(fmt.Sprintf("metrics: got %d label values for labels %v", len(values), v.labels))
	}
	k := labelKey(values)
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.m[k]
	if s == nil {
		s = &series[T]{values: slices.Clone(values), v: v.newT()}
		v.m[k] = s
	}
	fn(&s.v)
}

func (v *vec[T]) each(fn func(values []string, t *T)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	keys := make([]string, 0, len(v.m))
	for k := range v.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := v.m[k]
		fn(s.values, &s.v)
	}
}

// CounterVec is a counter with labels.
type CounterVec struct {
	n, help string
	vec[float64]
}

// Counter registers a counter. Its name should end in _total.
func (r *Registry) Counter(name, help string, labelNames ...string) *CounterVec {
	c := &CounterVec{n: name, help: help, vec: vec[float64]{labels: labelNames, m: map[string]*series[float64]{}, newT: func() float64 { return 0 }}}
	r.register(c)
	return c
}

// Add adds v (>= 0) to the series with these label values.
func (c *CounterVec) Add(v float64, labelValues ...string) {
	if v < 0 {
		panic("metrics: counters only go up")
	}
	c.with(labelValues, func(t *float64) { *t += v })
}

// Inc adds one.
func (c *CounterVec) Inc(labelValues ...string) { c.Add(1, labelValues...) }

func (c *CounterVec) name() string { return c.n }

func (c *CounterVec) write(_ context.Context, w *bufio.Writer) error {
	header(w, c.n, c.help, "counter")
	c.each(func(values []string, t *float64) {
		fmt.Fprintf(w, "%s%s %s\n", c.n, labels(c.labels, values), formatFloat(*t))
	})
	return nil
}

// HistogramVec is a histogram with labels.
type HistogramVec struct {
	n, help string
	buckets []float64
	vec[hist]
}

type hist struct {
	counts []uint64 // per bucket, not cumulative
	count  uint64
	sum    float64
}

// Histogram registers a histogram with the given upper bounds (sorted;
// +Inf is implied).
func (r *Registry) Histogram(name, help string, buckets []float64, labelNames ...string) *HistogramVec {
	b := slices.Clone(buckets)
	sort.Float64s(b)
	h := &HistogramVec{n: name, help: help, buckets: b}
	h.vec = vec[hist]{labels: labelNames, m: map[string]*series[hist]{}, newT: func() hist { return hist{counts: make([]uint64, len(b))} }}
	r.register(h)
	return h
}

// Observe records one value.
func (h *HistogramVec) Observe(v float64, labelValues ...string) {
	i := sort.SearchFloat64s(h.buckets, v) // first bound >= v: le is inclusive
	h.with(labelValues, func(t *hist) {
		if i < len(t.counts) {
			t.counts[i]++
		}
		t.count++
		t.sum += v
	})
}

func (h *HistogramVec) name() string { return h.n }

func (h *HistogramVec) write(_ context.Context, w *bufio.Writer) error {
	header(w, h.n, h.help, "histogram")
	h.each(func(values []string, t *hist) {
		var cum uint64
		for i, le := range h.buckets {
			cum += t.counts[i]
			fmt.Fprintf(w, "%s_bucket%s %d\n", h.n, labels(h.labels, values, "le", formatFloat(le)), cum)
		}
		fmt.Fprintf(w, "%s_bucket%s %d\n", h.n, labels(h.labels, values, "le", "+Inf"), t.count)
		fmt.Fprintf(w, "%s_sum%s %s\n", h.n, labels(h.labels, values), formatFloat(t.sum))
		fmt.Fprintf(w, "%s_count%s %d\n", h.n, labels(h.labels, values), t.count)
	})
	return nil
}

// GaugeFunc is a gauge computed at scrape time.
type GaugeFunc struct {
	n, help string
	label   string
	fn      func(ctx context.Context) (map[string]float64, error)
}

// GaugeFunc registers a gauge whose series (by the value of one label, or
// a single series under "" when label is empty) fn computes at each scrape.
func (r *Registry) GaugeFunc(name, help, label string, fn func(ctx context.Context) (map[string]float64, error)) {
	r.register(&GaugeFunc{n: name, help: help, label: label, fn: fn})
}

func (g *GaugeFunc) name() string { return g.n }

func (g *GaugeFunc) write(ctx context.Context, w *bufio.Writer) error {
	vals, err := g.fn(ctx)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	header(w, g.n, g.help, "gauge")
	for _, k := range keys {
		if g.label == "" {
			fmt.Fprintf(w, "%s %s\n", g.n, formatFloat(vals[k]))
			continue
		}
		fmt.Fprintf(w, "%s%s %s\n", g.n, labels([]string{g.label}, []string{k}), formatFloat(vals[k]))
	}
	return nil
}
