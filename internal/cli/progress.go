package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// progress is where a followed batch (or its revert) stands at one poll.
type progress struct {
	total, done int
	parts       []part // the final counts worth showing, in order
}

type part struct {
	name  string // as in the database: created, already_assigned, ...
	short string // for the bar, where width is scarce
	n     int
}

func (p progress) finished() bool { return p.done >= p.total }

// rateMeter estimates rows finished per second over a sliding window, so
// the ETA follows the pace of the last seconds rather than of the whole run
// (a batch often starts slowly, reading its configurations' lists).
type rateMeter struct {
	window  time.Duration
	samples []rateSample
}

type rateSample struct {
	t    time.Time
	done int
}

func (m *rateMeter) add(t time.Time, done int) {
	if n := len(m.samples); n > 0 && done < m.samples[n-1].done {
		m.samples = m.samples[:0] // rows went back (a retry): start over
	}
	m.samples = append(m.samples, rateSample{t, done})
	// Keep one sample older than the window, so the window stays full.
	i := 0
	for i+1 < len(m.samples) && t.Sub(m.samples[i+1].t) >= m.window {
		i++
	}
	m.samples = m.samples[i:]
}

// rate is rows per second, 0 while unknown.
func (m *rateMeter) rate() float64 {
	if len(m.samples) < 2 {
		return 0
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	dt := last.t.Sub(first.t).Seconds()
	if dt < 0.2 {
		return 0
	}
	return float64(last.done-first.done) / dt
}

// eta formats the time left at rate; "-" while it cannot be told.
func eta(remaining int, rate float64) string {
	if remaining <= 0 {
		return "0s"
	}
	if rate <= 0 {
		return "-"
	}
	d := time.Duration(float64(remaining) / rate * float64(time.Second))
	if d > 99*time.Hour {
		return "-"
	}
	return d.Round(time.Second).String()
}

// plainLine is one progress line for a log or a pipe:
//
//	batch 3f2a9c1e: 120/300 final (created 100, already_assigned 15, failed 5), 9.8 rows/s, eta 18s
func plainLine(label string, p progress, rate float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d/%d final (", label, p.done, p.total)
	for i, pt := range p.parts {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", pt.name, pt.n)
	}
	fmt.Fprintf(&b, "), %.1f rows/s, eta %s", rate, eta(p.total-p.done, rate))
	return b.String()
}

// barLine is the live bar for a terminal width columns wide; it never
// reaches the last column, so that the terminal does not wrap it:
//
//	[########------------] 120/300  created 100 already  15 failed   5  9.8/s  eta 18s
func barLine(width int, p progress, rate float64) string {
	// Counts are padded to the width of the total, so that the bar keeps
	// its length as they grow.
	w := len(strconv.Itoa(p.total))
	var b strings.Builder
	fmt.Fprintf(&b, " %*d/%d ", w, p.done, p.total)
	for _, pt := range p.parts {
		fmt.Fprintf(&b, " %s %*d", pt.short, w, pt.n)
	}
	fmt.Fprintf(&b, "  %.1f/s  eta %s", rate, eta(p.total-p.done, rate))
	stats := b.String()
	room := width - 1 - len(stats) - 2 // the brackets
	if room < 10 {
		if len(stats) > width-1 {
			stats = stats[:max(width-1, 0)]
		}
		return strings.TrimLeft(stats, " ")
	}
	barWidth := min(room, 40)
	fill := barWidth
	if p.total > 0 {
		fill = barWidth * p.done / p.total
	}
	return "[" + strings.Repeat("#", fill) + strings.Repeat("-", barWidth-fill) + "]" + stats
}

// shortID is the first 8 characters of a batch id, which every command
// accepts as the batch (when unique).
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
