package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// A runResult is one run of one scenario. Times are in microseconds.
type runResult struct {
	Scenario string  `json:"scenario"`
	Round    int     `json:"round"`
	Conns    int     `json:"conns"`
	Rate     float64 `json:"rate,omitempty"` // open-loop target rate; 0 for closed loop
	Seconds  float64 `json:"seconds"`
	Requests int64   `json:"requests"`
	RPS      float64 `json:"rps"`
	P50      float64 `json:"p50_us"`
	P90      float64 `json:"p90_us"`
	P99      float64 `json:"p99_us"`
	Max      float64 `json:"max_us"`
	Errors   int64   `json:"errors"`
	// ErrorsTotal counts errors over the whole run, warm-up included.
	ErrorsTotal int64            `json:"errors_total"`
	ErrorKinds  map[string]int64 `json:"error_kinds,omitempty"`
	FirstError  string           `json:"first_error,omitempty"`
	// CPU per answered request, server process and load generator.
	ServerCPU float64 `json:"server_cpu_us_per_req"`
	ClientCPU float64 `json:"client_cpu_us_per_req"`
	// GenLateP99 is the generator's own p99 lateness in open-loop runs.
	GenLateP99 float64 `json:"generator_late_p99_us,omitempty"`
	Load1      float64 `json:"load1"`
	// HandlerP50 and HandlerP99 are the bucket bounds of flex-auth's own
	// check duration histogram (the handler, log write included) over the
	// whole run; 0 for the bare handler.
	HandlerP50 float64 `json:"handler_p50_us,omitempty"`
	HandlerP99 float64 `json:"handler_p99_us,omitempty"`
	// Answered and LogLines check the decision-log guarantee: every
	// decision answered with 200 over the whole run has a line.
	Answered int64 `json:"answered"`
	LogLines int64 `json:"log_lines,omitempty"`
	// LinesPerFlush is, with --log-sync, the decisions a flush of the
	// decision log covered on average over the whole run: the group
	// commit's batch.
	LinesPerFlush float64 `json:"lines_per_flush,omitempty"`
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// newRunResult fills a runResult from a load result.
func newRunResult(scenario string, round int, l *load, r *loadResult) runResult {
	rr := runResult{
		Scenario: scenario, Round: round, Conns: l.conns, Rate: l.rate,
		Seconds:  r.window.Seconds(),
		Requests: r.ok, RPS: r.rps(),
		P50: us(r.latency.percentile(0.50)), P90: us(r.latency.percentile(0.90)),
		P99: us(r.latency.percentile(0.99)), Max: us(time.Duration(r.latency.max)),
		Errors: r.errs, ErrorsTotal: r.errsTotal, ErrorKinds: r.errKinds,
		Answered: r.okTotal, FirstError: r.firstError(),
	}
	if len(rr.ErrorKinds) == 0 {
		rr.ErrorKinds = nil
	}
	if l.rate > 0 {
		rr.GenLateP99 = us(r.lateness.percentile(0.99))
	}
	return rr
}

// A summary is the medians of a scenario's runs.
type summary struct {
	Scenario  string  `json:"scenario"`
	Label     string  `json:"label"`
	Runs      int     `json:"runs"`
	RPS       float64 `json:"rps"`
	RPSMin    float64 `json:"rps_min"`
	RPSMax    float64 `json:"rps_max"`
	P50       float64 `json:"p50_us"`
	P90       float64 `json:"p90_us"`
	P99       float64 `json:"p99_us"`
	Max       float64 `json:"max_us"`
	Errors    int64   `json:"errors"` // sum over the runs, whole runs
	ServerCPU float64 `json:"server_cpu_us_per_req"`
	ClientCPU float64 `json:"client_cpu_us_per_req"`
	// HandlerP99 is the median of the runs' handler p99 bucket bounds.
	HandlerP99 float64 `json:"handler_p99_us,omitempty"`
	// LinesPerFlush is the median of the runs' decisions per flush
	// (--log-sync).
	LinesPerFlush float64 `json:"lines_per_flush,omitempty"`
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summarize returns the medians of runs, which must all be of one
// scenario.
func summarize(scenario, label string, runs []runResult) summary {
	s := summary{Scenario: scenario, Label: label, Runs: len(runs)}
	if len(runs) == 0 {
		return s
	}
	col := func(f func(r runResult) float64) []float64 {
		out := make([]float64, len(runs))
		for i, r := range runs {
			out[i] = f(r)
		}
		return out
	}
	rps := col(func(r runResult) float64 { return r.RPS })
	s.RPS = median(rps)
	s.RPSMin, s.RPSMax = slices.Min(rps), slices.Max(rps)
	s.P50 = median(col(func(r runResult) float64 { return r.P50 }))
	s.P90 = median(col(func(r runResult) float64 { return r.P90 }))
	s.P99 = median(col(func(r runResult) float64 { return r.P99 }))
	s.Max = median(col(func(r runResult) float64 { return r.Max }))
	s.ServerCPU = median(col(func(r runResult) float64 { return r.ServerCPU }))
	s.ClientCPU = median(col(func(r runResult) float64 { return r.ClientCPU }))
	s.HandlerP99 = median(col(func(r runResult) float64 { return r.HandlerP99 }))
	s.LinesPerFlush = median(col(func(r runResult) float64 { return r.LinesPerFlush }))
	for _, r := range runs {
		s.Errors += r.ErrorsTotal
	}
	return s
}

// pairedRatio returns the median over rounds of num's rate divided by
// den's rate in the same round. Runs of one round ran back to back, so the
// paired ratio cancels most of the machine's drift between rounds.
func pairedRatio(num, den []runResult) float64 {
	byRound := map[int]float64{}
	for _, r := range den {
		byRound[r.Round] = r.RPS
	}
	var ratios []float64
	for _, r := range num {
		if d, ok := byRound[r.Round]; ok && d > 0 {
			ratios = append(ratios, r.RPS/d)
		}
	}
	return median(ratios)
}

// largeResult is what the large-registry mode measured.
type largeResult struct {
	Actors        int     `json:"actors"`
	SnapshotBytes int64   `json:"snapshot_bytes"`
	StartupMS     float64 `json:"startup_ms"`
	Conns         int     `json:"conns"`
	Seconds       float64 `json:"seconds"`
	RPS           float64 `json:"rps"`
	P50           float64 `json:"p50_us"`
	P99           float64 `json:"p99_us"`
	Max           float64 `json:"max_us"`
	// RSSBeforeReload is the server's resident size under load before the
	// reload; PeakRSS its high-water mark over the whole run (VmHWM).
	RSSBeforeReload int64 `json:"rss_before_reload_bytes"`
	// PeakAtStart and PeakBeforeReload are the high-water mark once the
	// server was ready, and just before the reload: where the peak was.
	PeakAtStart      int64   `json:"peak_rss_at_start_bytes"`
	PeakBeforeReload int64   `json:"peak_rss_before_reload_bytes"`
	PeakRSS          int64   `json:"peak_rss_bytes"`
	ReloadMS         float64 `json:"reload_visible_ms"`
	// ReloadErrors counts failed requests from SIGHUP until the new
	// digest was seen plus one second; Errors counts the whole run.
	ReloadErrors int64            `json:"reload_errors"`
	Errors       int64            `json:"errors"`
	ErrorKinds   map[string]int64 `json:"error_kinds,omitempty"`
	FirstError   string           `json:"first_error,omitempty"`
	Answered     int64            `json:"answered"`
	LogLines     int64            `json:"log_lines"`
}

// A report is everything one invocation measured.
type report struct {
	Machine   machine     `json:"machine"`
	Command   string      `json:"command"`
	Runs      []runResult `json:"runs"`
	Summaries []summary   `json:"summaries"`
	// RatioA and RatioB are median(a)/median(c) and median(b)/median(c);
	// the paired ratios are medians of the per-round ratios.
	RatioA       float64 `json:"ratio_a_c"`
	RatioB       float64 `json:"ratio_b_c"`
	PairedRatioA float64 `json:"paired_ratio_a_c"`
	PairedRatioB float64 `json:"paired_ratio_b_c"`
	RatioX       float64 `json:"ratio_x_c,omitempty"`
	PairedRatioX float64 `json:"paired_ratio_x_c,omitempty"`
	RatioY       float64 `json:"ratio_y_c,omitempty"`
	PairedRatioY float64 `json:"paired_ratio_y_c,omitempty"`
	// RatioE is median(e)/median(f), an AuthZEN evaluation against the
	// bare handler decoding the same body; RatioEC is median(e)/median(c).
	// BatchGain is g's decisions per second (batchSize a request) over e's.
	RatioE          float64             `json:"ratio_e_f,omitempty"`
	PairedRatioE    float64             `json:"paired_ratio_e_f,omitempty"`
	RatioEC         float64             `json:"ratio_e_c,omitempty"`
	BatchGain       float64             `json:"batch_decisions_ratio_g_e,omitempty"`
	PairedBatchGain float64             `json:"paired_batch_decisions_ratio_g_e,omitempty"`
	Search          *searchResult       `json:"search,omitempty"`
	HalfLoad        *summary            `json:"half_load,omitempty"`
	HalfLoadBare    *summary            `json:"half_load_bare,omitempty"`
	HalfLoadRate    float64             `json:"half_load_rate,omitempty"`
	Large           []largeResult       `json:"large,omitempty"`
	Publication     []publicationResult `json:"publication,omitempty"`
	Convergence     []convergenceResult `json:"convergence,omitempty"`
}

// machine describes where the numbers were taken.
type machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel"`
	LogFS     string `json:"log_filesystem"`
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// rows returns the summaries to tabulate: closed loop, then half load.
func (r *report) rows() []summary {
	rows := slices.Clone(r.Summaries)
	for _, s := range []*summary{r.HalfLoad, r.HalfLoadBare} {
		if s != nil {
			rows = append(rows, *s)
		}
	}
	return rows
}

// writeText writes the summary table and ratios for a terminal.
func (r *report) writeText(w io.Writer) {
	fmt.Fprintf(w, "\nmachine: %d CPUs, %s, %s, kernel %s, logs on %s\n",
		r.Machine.CPUs, r.Machine.CPUModel, r.Machine.GoVersion, r.Machine.Kernel, r.Machine.LogFS)
	fmt.Fprintf(w, "%-34s %4s %9s %17s %8s %8s %8s %9s %6s %8s %8s %10s\n",
		"scenario (medians)", "runs", "req/s", "min..max", "p50 µs", "p90 µs", "p99 µs", "max µs", "errors", "srv µs/r", "gen µs/r", "handler99")
	for _, s := range r.rows() {
		fmt.Fprintf(w, "%-34s %4d %9.0f %8.0f..%-8.0f %8.0f %8.0f %8.0f %9.0f %6d %8.1f %8.1f %10s\n",
			s.Scenario+" "+s.Label, s.Runs, s.RPS, s.RPSMin, s.RPSMax, s.P50, s.P90, s.P99, s.Max, s.Errors, s.ServerCPU, s.ClientCPU, handlerCol(s.HandlerP99))
	}
	for _, q := range r.againstBare() {
		fmt.Fprintf(w, "ratio %s/c = %.3f (paired %.3f)\n", q.scenario, q.ratio, q.paired)
	}
	for _, s := range r.Summaries {
		if s.LinesPerFlush > 0 {
			fmt.Fprintf(w, "%s: %.1f decisions per flush (median)\n", s.Scenario, s.LinesPerFlush)
		}
	}
	if r.RatioE > 0 {
		fmt.Fprintf(w, "ratio e/f = %.3f (paired %.3f)", r.RatioE, r.PairedRatioE)
		if r.RatioEC > 0 {
			fmt.Fprintf(w, "; e/c = %.3f", r.RatioEC)
		}
		fmt.Fprintln(w)
	}
	if r.BatchGain > 0 {
		fmt.Fprintf(w, "batches of %d: %.1f times e's decisions per second (paired %.1f)\n", batchSize, r.BatchGain, r.PairedBatchGain)
	}
	if r.HalfLoad != nil {
		fmt.Fprintf(w, "p99 at %.0f req/s (50%% of a's median maximum): %.0f µs (median of %d runs)",
			r.HalfLoadRate, r.HalfLoad.P99, r.HalfLoad.Runs)
		if r.HalfLoadBare != nil {
			fmt.Fprintf(w, "; the bare handler at the same rate: %.0f µs", r.HalfLoadBare.P99)
		}
		fmt.Fprintln(w)
	}
	for _, l := range r.Large {
		fmt.Fprintf(w, "large: %d actors (%.1f MB snapshot), ready in %.0f ms; %.0f req/s over %.0fs with %d conns, p50 %.0f µs, p99 %.0f µs; "+
			"RSS %.1f MB under load, peak %.1f MB (%.1f at start, %.1f before the reload); reload visible in %.1f ms; %d errors during reload, %d in the run; %d answered, %d log lines\n",
			l.Actors, mb(l.SnapshotBytes), l.StartupMS, l.RPS, l.Seconds, l.Conns, l.P50, l.P99,
			mb(l.RSSBeforeReload), mb(l.PeakRSS), mb(l.PeakAtStart), mb(l.PeakBeforeReload), l.ReloadMS, l.ReloadErrors, l.Errors, l.Answered, l.LogLines)
		if l.FirstError != "" {
			fmt.Fprintf(w, "  first error: %s\n", l.FirstError)
		}
	}
	if s := r.Search; s != nil {
		fmt.Fprintf(w, "search: %d actors, %d conns, %.0f searches/s over %.0fs, p50 %.0f µs, p99 %.0f µs, max %.0f µs; %d errors; %d answered, %d log lines\n",
			s.Actors, s.Conns, s.RPS, s.Seconds, s.P50, s.P99, s.Max, s.Errors, s.Answered, s.LogLines)
		if s.First != "" {
			fmt.Fprintf(w, "  first error: %s\n", s.First)
		}
	}
	r.writePublication(w)
	for _, c := range r.Convergence {
		fmt.Fprintln(w, convergenceLine(c))
	}
	if t := r.targets(); len(t) > 0 {
		fmt.Fprintln(w, "against the targets:")
		for _, t := range t {
			fmt.Fprintf(w, "  %-6s %s: %s\n", t.verdict(), t.What, t.Measured)
		}
	}
}

// convergenceLine is the one-line report of a convergence round.
func convergenceLine(c convergenceResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "convergence: %d replicas, %d actors, poll %s, load average %.1f: publish %.0f ms; every replica served the new publication %.0f..%.0f ms after publish returned (target %.0f ms); "+
		"%d conns, %.0f req/s, %d errors; %d decisions (%d old pair, %d new), %d log lines, every decision's with the digests it was answered with",
		c.Replicas, c.Actors, c.poll(), c.Load1, c.PublishMS, slices.Min(c.ServedMS), c.MaxServedMS, c.targetMS(),
		c.Conns, c.RPS, c.Errors, c.OldPair+c.NewPair, c.OldPair, c.NewPair, c.Logged)
	if c.IdleSeconds > 0 {
		fmt.Fprintf(&b, "; idle over %.0fs: %.1f registry requests per replica per minute, %.2f per poll", c.IdleSeconds, c.IdlePerMinute, c.idlePerPoll())
	}
	if c.FirstError != "" {
		fmt.Fprintf(&b, "\n  first error: %s", c.FirstError)
	}
	return b.String()
}

// A target is a row of the "against the targets" table: a target of
// BENCHMARKS.md, what this run measured of it, and whether that met it.
type target struct {
	What, Measured string
	Met            bool
}

func (t target) verdict() string {
	if t.Met {
		return "met"
	}
	return "MISSED"
}

// targets returns the targets this run measured.
func (r *report) targets() []target {
	var ts []target
	if r.RatioA > 0 {
		ts = append(ts, target{"a/c >= 0.80, decision log to a file", fmt.Sprintf("%.3f (paired %.3f)", r.RatioA, r.PairedRatioA), r.RatioA >= 0.80})
	}
	if r.RatioB > 0 {
		ts = append(ts, target{"b/c >= 0.60, --log-sync", fmt.Sprintf("%.3f (paired %.3f)", r.RatioB, r.PairedRatioB), r.RatioB >= 0.60})
	}
	if h := r.HalfLoad; h != nil {
		ts = append(ts, target{"p99 <= 2 ms at 50% of a's maximum", fmt.Sprintf("%.2f ms at %.0f req/s", h.P99/1e3, r.HalfLoadRate), h.P99 <= 2e3})
	}
	if len(r.Large) > 0 {
		var peak int64
		var reload float64
		var errs int64
		for _, l := range r.Large {
			peak, reload, errs = max(peak, l.PeakRSS), max(reload, l.ReloadMS), errs+l.ReloadErrors
		}
		ts = append(ts,
			target{fmt.Sprintf("%d actors: peak RSS <= 150 MB", r.Large[0].Actors), fmt.Sprintf("%.1f MB", mb(peak)), peak <= 150<<20},
			target{"reload visible on /healthz within 1 s of SIGHUP", fmt.Sprintf("%.0f ms", reload), reload <= 1000},
			target{"zero failed requests during the reload", fmt.Sprint(errs), errs == 0})
	}
	if cs := r.Convergence; len(cs) > 0 {
		var served []string
		met, idleMet := true, true
		var worst, idle, perPoll []float64
		var errs, decisions int64
		for _, c := range cs {
			served = append(served, fmt.Sprintf("%.0f", c.MaxServedMS))
			met = met && c.MaxServedMS <= c.targetMS()
			worst = append(worst, c.MaxServedMS)
			errs, decisions = errs+c.Errors, decisions+c.OldPair+c.NewPair
			if c.IdleSeconds > 0 {
				idle, perPoll = append(idle, c.IdlePerMinute), append(perPoll, c.idlePerPoll())
				idleMet = idleMet && c.idlePerPoll() == 1 && c.IdlePerMinute <= c.idleBound()
			}
		}
		c := cs[0] // the rounds differ only in what they measured
		ts = append(ts,
			target{fmt.Sprintf("%d replicas serve a new publication within the poll interval and a second", c.Replicas),
				fmt.Sprintf("the last after %.0f ms at a %s poll (target %.0f ms; rounds: %s)", slices.Max(worst), c.poll(), c.targetMS(), strings.Join(served, ", ")), met},
			target{"zero failed requests while they converge", fmt.Sprintf("%d failed, %d decisions", errs, decisions), errs == 0},
			target{"each answered decision's log line carries the digests of the pair that answered it",
				fmt.Sprintf("all %d (a round fails otherwise)", decisions), true})
		if len(idle) > 0 {
			ts = append(ts, target{"idle: one request to the registry per poll",
				fmt.Sprintf("%.1f-%.1f requests per replica per minute at a %s poll (at most %.1f), %.2f-%.2f per poll",
					slices.Min(idle), slices.Max(idle), c.poll(), c.idleBound(), slices.Min(perPoll), slices.Max(perPoll)), idleMet})
		}
	}
	return ts
}

// writePublication writes the publication mode's results as text.
func (r *report) writePublication(w io.Writer) {
	for _, p := range r.Publication {
		fmt.Fprintf(w, "publication: %d actors (%.1f MB snapshot): publish %.0f ms; first pull until ready %.0f ms, RSS %.1f MB (peak %.1f); "+
			"under load %.0f req/s, p99 %.0f µs, RSS %.1f MB; a new publication served %.0f ms after publish returned (poll %s); peak RSS %.1f MB; %d errors; "+
			"start from the cache with the registry down %.0f ms\n",
			p.Actors, mb(p.SnapshotBytes), p.PublishMS, p.FirstPullMS, mb(p.RSSAtStart), mb(p.PeakAtStart), p.RPS, p.P99, mb(p.RSSUnderLoad),
			p.UpdateMS, publicationPoll, mb(p.PeakRSS), p.Errors, p.CacheStartMS)
	}
}

// handlerCol formats a handler p99 bucket bound for the tables.
func handlerCol(us float64) string {
	if us == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", us)
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// writeMarkdown writes the same as writeText as Markdown tables.
func (r *report) writeMarkdown(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %s, Linux %s, decision logs on %s.\n\n", m.CPUs, m.CPUModel, m.GoVersion, m.Kernel, m.LogFS)
	fmt.Fprintf(w, "Command: `%s`\n\n", r.Command)
	if len(r.Summaries) > 0 || r.HalfLoad != nil {
		fmt.Fprintln(w, "| scenario | runs | req/s (median) | min..max | p50 µs | p90 µs | p99 µs | max µs | errors | server CPU µs/req | generator CPU µs/req | handler p99 µs (≤) |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, s := range r.rows() {
			fmt.Fprintf(w, "| %s %s | %d | %.0f | %.0f..%.0f | %.0f | %.0f | %.0f | %.0f | %d | %.1f | %.1f | %s |\n",
				s.Scenario, s.Label, s.Runs, s.RPS, s.RPSMin, s.RPSMax, s.P50, s.P90, s.P99, s.Max, s.Errors, s.ServerCPU, s.ClientCPU, handlerCol(s.HandlerP99))
		}
		fmt.Fprintln(w)
	}
	for _, q := range r.againstBare() {
		fmt.Fprintf(w, "Ratio %s/c = **%.3f** (paired per round: %.3f).\n\n", q.scenario, q.ratio, q.paired)
	}
	for _, s := range r.Summaries {
		if s.LinesPerFlush > 0 {
			fmt.Fprintf(w, "%s: %.1f decisions per flush (median of the runs).\n\n", s.Scenario, s.LinesPerFlush)
		}
	}
	if r.RatioE > 0 {
		fmt.Fprintf(w, "Ratio e/f = **%.3f** (paired per round: %.3f)", r.RatioE, r.PairedRatioE)
		if r.RatioEC > 0 {
			fmt.Fprintf(w, "; e/c = %.3f", r.RatioEC)
		}
		fmt.Fprint(w, ".\n\n")
	}
	if r.BatchGain > 0 {
		fmt.Fprintf(w, "Batches of %d evaluations: **%.1f** times e's decisions per second (paired per round: %.1f).\n\n", batchSize, r.BatchGain, r.PairedBatchGain)
	}
	if r.HalfLoad != nil {
		fmt.Fprintf(w, "p99 at %.0f req/s (50%% of a's median maximum), open loop: **%.0f µs** (median of %d runs)",
			r.HalfLoadRate, r.HalfLoad.P99, r.HalfLoad.Runs)
		if r.HalfLoadBare != nil {
			fmt.Fprintf(w, "; the bare handler at the same rate: %.0f µs", r.HalfLoadBare.P99)
		}
		fmt.Fprint(w, ".\n\n")
	}
	if len(r.Large) > 0 {
		fmt.Fprintln(w, "| large registry | actors | ready ms | req/s | p50 µs | p99 µs | RSS under load MB | peak RSS MB (at start, before reload) | reload visible ms | errors in reload | errors in run |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for i, l := range r.Large {
			fmt.Fprintf(w, "| round %d | %d | %.0f | %.0f | %.0f | %.0f | %.1f | %.1f (%.1f, %.1f) | %.1f | %d | %d |\n",
				i+1, l.Actors, l.StartupMS, l.RPS, l.P50, l.P99, mb(l.RSSBeforeReload), mb(l.PeakRSS), mb(l.PeakAtStart), mb(l.PeakBeforeReload), l.ReloadMS, l.ReloadErrors, l.Errors)
		}
		fmt.Fprintln(w)
	}
	if s := r.Search; s != nil {
		fmt.Fprintln(w, "| AuthZEN search | actors | conns | searches/s | p50 µs | p99 µs | max µs | errors | answered | log lines |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		fmt.Fprintf(w, "| resource and subject searches | %d | %d | %.0f | %.0f | %.0f | %.0f | %d | %d | %d |\n\n",
			s.Actors, s.Conns, s.RPS, s.P50, s.P99, s.Max, s.Errors, s.Answered, s.LogLines)
	}
	if len(r.Publication) > 0 {
		fmt.Fprintln(w, "| publication | actors | snapshot MB | publish ms | first pull until ready ms | RSS at start MB (peak) | req/s | p99 µs | RSS under load MB | new publication served ms | peak RSS MB | errors | start from cache ms |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for i, p := range r.Publication {
			fmt.Fprintf(w, "| round %d | %d | %.1f | %.0f | %.0f | %.1f (%.1f) | %.0f | %.0f | %.1f | %.0f | %.1f | %d | %.0f |\n",
				i+1, p.Actors, mb(p.SnapshotBytes), p.PublishMS, p.FirstPullMS, mb(p.RSSAtStart), mb(p.PeakAtStart), p.RPS, p.P99,
				mb(p.RSSUnderLoad), p.UpdateMS, mb(p.PeakRSS), p.Errors, p.CacheStartMS)
		}
		fmt.Fprintln(w)
	}
	if len(r.Convergence) > 0 {
		fmt.Fprintln(w, "| convergence | replicas | actors | poll | load average | publish ms | served after publish ms (min..max) | target ms | conns | req/s | errors | decisions (old pair, new) | log lines | idle: registry requests per replica per minute (per poll) |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for i, c := range r.Convergence {
			idle := "-"
			if c.IdleSeconds > 0 {
				idle = fmt.Sprintf("%.1f over %.0fs (%.2f)", c.IdlePerMinute, c.IdleSeconds, c.idlePerPoll())
			}
			fmt.Fprintf(w, "| round %d | %d | %d | %s | %.1f | %.0f | %.0f..%.0f | %.0f | %d | %.0f | %d | %d (%d, %d) | %d | %s |\n",
				i+1, c.Replicas, c.Actors, c.poll(), c.Load1, c.PublishMS, slices.Min(c.ServedMS), c.MaxServedMS, c.targetMS(),
				c.Conns, c.RPS, c.Errors, c.OldPair+c.NewPair, c.OldPair, c.NewPair, c.Logged, idle)
		}
		fmt.Fprintln(w)
	}
	if t := r.targets(); len(t) > 0 {
		fmt.Fprintln(w, "| target | measured | |")
		fmt.Fprintln(w, "| --- | --- | --- |")
		for _, t := range t {
			fmt.Fprintf(w, "| %s | %s | %s |\n", t.What, t.Measured, t.verdict())
		}
		fmt.Fprintln(w)
	}
}

// runLine is the one-line progress report of a finished run.
func runLine(r runResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "round %d %-2s %8.0f req/s  p50 %6.0f µs  p90 %6.0f µs  p99 %6.0f µs  max %7.0f µs  errors %d  srv %.1f µs/req  gen %.1f µs/req  load %.2f",
		r.Round, r.Scenario, r.RPS, r.P50, r.P90, r.P99, r.Max, r.ErrorsTotal, r.ServerCPU, r.ClientCPU, r.Load1)
	if r.Rate > 0 {
		fmt.Fprintf(&b, "  (open loop at %.0f req/s, generator late p99 %.0f µs)", r.Rate, r.GenLateP99)
	}
	if r.HandlerP99 > 0 {
		fmt.Fprintf(&b, "  handler p99 <= %.0f µs", r.HandlerP99)
	}
	if r.LinesPerFlush > 0 {
		fmt.Fprintf(&b, "  %.1f decisions/flush", r.LinesPerFlush)
	}
	if r.LogLines > 0 || r.Scenario == "a" || r.Scenario == "b" || r.Scenario == "e" || r.Scenario == "g" {
		fmt.Fprintf(&b, "  answered %d, logged %d", r.Answered, r.LogLines)
	}
	if r.FirstError != "" {
		fmt.Fprintf(&b, "\n    first error: %s", r.FirstError)
	}
	return b.String()
}

// A bareRatio is a scenario's throughput over the bare handler's (c), as
// medians and paired per round.
type bareRatio struct {
	scenario      string
	ratio, paired float64
}

// againstBare returns the ratios to c that the run measured, in the order
// the reports print them: a, b, x, y.
func (r *report) againstBare() []bareRatio {
	var out []bareRatio
	for _, q := range []bareRatio{{"a", r.RatioA, r.PairedRatioA}, {"b", r.RatioB, r.PairedRatioB}, {"x", r.RatioX, r.PairedRatioX}, {"y", r.RatioY, r.PairedRatioY}} {
		if q.ratio > 0 {
			out = append(out, q)
		}
	}
	return out
}
