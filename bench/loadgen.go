package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"
)

// A request is one pre-encoded check request and the decision it should
// get. An empty effect means the answer's content is not checked (the bare
// handler answers a fixed decision).
type request struct {
	wire   []byte
	effect string
	reason string
	// match, when set, checks the answer instead of effect and reason.
	match func(body []byte) bool
	// decisions is how many decisions one answer gives: 0 means one.
	decisions int
}

// answerIs reports whether body is the answer r must get.
func (r *request) answerIs(body []byte) bool {
	if r.match != nil {
		return r.match(body)
	}
	return decisionIs(body, r.effect, r.reason)
}

// A load describes one run of the load generator.
type load struct {
	addr string
	// addrs, when set, spreads the connections over several servers:
	// connection i goes to addrs[i%len(addrs)], and addr is not used.
	addrs    []string
	requests []request
	conns    int
	warmup   time.Duration
	duration time.Duration
	// rate, when positive, makes the run open-loop: requests are scheduled
	// at rate per second in total, spread evenly over the connections.
	rate float64
	// check makes a response count as an error unless it carries the
	// expected effect and reason.
	check bool
	// onMeasure, when set, is called at the start and at the end of the
	// measured window, from the coordinating goroutine.
	onMeasure func(start bool)
	// onAnswer, when set, is given every answer with status 200, warm-up
	// included, by the worker of its connection: the connection's index,
	// when the request was sent and answered, and the body, which is
	// valid only during the call.
	onAnswer func(conn int, sent, done time.Time, body []byte)
}

// addrOf returns the address of connection i.
func (l *load) addrOf(i int) string {
	if len(l.addrs) > 0 {
		return l.addrs[i%len(l.addrs)]
	}
	return l.addr
}

// An errorEvent is one failed request.
type errorEvent struct {
	at   time.Time
	kind string // "transport", "status", "decision"
	msg  string
}

// A loadResult is what one run measured. Counts and latencies cover the
// measured window only (completions inside it); errors are also kept for
// the whole run, with their times.
type loadResult struct {
	window    time.Duration
	sent      int64 // requests sent over the whole run, warm-up included
	ok        int64 // answered as expected inside the window
	okTotal   int64 // answered with 200 over the whole run, warm-up included
	errs      int64 // failed inside the window
	errsTotal int64
	errKinds  map[string]int64
	events    []errorEvent // the first errors of each worker, at most maxEvents each
	latency   histogram
	// lateness is how late the generator itself sent scheduled requests
	// (open loop only), for judging the generator rather than the server.
	lateness histogram
}

const maxEvents = 64

// rps returns the rate of successful requests in the window.
func (r *loadResult) rps() float64 {
	if r.window <= 0 {
		return 0
	}
	return float64(r.ok) / r.window.Seconds()
}

// atWindowStart returns a load's onMeasure that runs f, in a goroutine of
// its own, when the measured window starts, and the channel that f's
// error comes on: what a mode does to the server under load (a reload, a
// new publication) while the window measures it.
func atWindowStart(f func() error) (onMeasure func(start bool), done <-chan error) {
	errc := make(chan error, 1)
	return func(start bool) {
		if start {
			go func() { errc <- f() }()
		}
	}, errc
}

// firstError describes the run's first error, "" when it had none.
func (r *loadResult) firstError() string {
	if len(r.events) == 0 {
		return ""
	}
	return r.events[0].kind + ": " + r.events[0].msg
}

// run runs the load and returns what it measured. Transport errors are
// counted, the connection is redialled, and the run goes on: a run never
// fails because the server misbehaves, only when the context is cancelled
// or the address cannot be dialled at all.
func (l *load) run(ctx context.Context) (*loadResult, error) {
	if len(l.requests) == 0 || l.conns <= 0 {
		return nil, fmt.Errorf("load: no requests or connections")
	}
	conns := make([]*client, l.conns)
	for i := range conns {
		c, err := dial(l.addrOf(i))
		if err != nil {
			for _, c := range conns[:i] {
				c.close()
			}
			return nil, err
		}
		conns[i] = c
	}
	start := time.Now()
	mStart := start.Add(l.warmup)
	mEnd := mStart.Add(l.duration)
	workers := make([]*worker, l.conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{
			load: l, c: conns[i], id: i,
			next:   i * len(l.requests) / l.conns,
			start:  start,
			mStart: mStart, mEnd: mEnd,
			kinds: map[string]int64{},
		}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx)
		}()
	}
	if l.onMeasure != nil {
		waitUntil(ctx, mStart)
		l.onMeasure(true)
		waitUntil(ctx, mEnd)
		l.onMeasure(false)
	}
	wg.Wait()
	for _, c := range conns {
		c.close()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := &loadResult{window: l.duration, errKinds: map[string]int64{}}
	for _, w := range workers {
		res.sent += w.sent
		res.ok += w.ok
		res.okTotal += w.okTotal
		res.errs += w.errs
		res.errsTotal += w.errsTotal
		for k, n := range w.kinds {
			res.errKinds[k] += n
		}
		res.events = append(res.events, w.events...)
		res.latency.merge(&w.latency)
		res.lateness.merge(&w.lateness)
	}
	sort.Slice(res.events, func(i, j int) bool { return res.events[i].at.Before(res.events[j].at) })
	return res, nil
}

// waitUntil blocks until t or until ctx is done.
func waitUntil(ctx context.Context, t time.Time) {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// A worker drives one connection.
type worker struct {
	*load
	c                   *client
	id                  int
	next                int
	start, mStart, mEnd time.Time

	sent, ok, okTotal, errs, errsTotal int64
	kinds                              map[string]int64
	events                             []errorEvent
	latency, lateness                  histogram
}

func (w *worker) loop(ctx context.Context) {
	var interval time.Duration
	if w.rate > 0 {
		interval = time.Duration(float64(w.conns) / w.rate * float64(time.Second))
	}
	// prevEnd is when the previous answer arrived; prevVirtualEnd when it
	// would have, had every request been sent exactly when due.
	var prevEnd, prevVirtualEnd time.Time
	var timer *time.Timer
	for i := 0; ctx.Err() == nil; i++ {
		// A closed loop goes on while the previous answer came before the
		// end of the window: every connection sends at least one request,
		// however late its goroutine runs.
		if interval == 0 && i > 0 && !prevEnd.Before(w.mEnd) {
			return
		}
		req := &w.requests[w.next]
		w.next++
		if w.next == len(w.requests) {
			w.next = 0
		}
		var sched time.Time
		if interval > 0 {
			// Connection k sends at start + (i + k/conns) * interval.
			sched = w.start.Add(time.Duration(i)*interval + time.Duration(w.id)*interval/time.Duration(w.conns))
			if !sched.Before(w.mEnd) {
				return
			}
			if d := time.Until(sched); d > 0 {
				if timer == nil {
					timer = time.NewTimer(d)
				} else {
					timer.Reset(d)
				}
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
		}
		sent := time.Now()
		w.sent++
		status, body, err := w.c.roundTrip(req.wire)
		done := time.Now()
		in := !done.Before(w.mStart) && done.Before(w.mEnd)
		// The virtual timeline: the request goes out when due, or when
		// the connection is free on that same timeline, and takes as long
		// as it really took.
		virtualEnd := laterOf(sched, prevVirtualEnd).Add(done.Sub(sent))
		if err != nil {
			w.fail(done, in, "transport", err.Error())
			w.c.redial()
			prevEnd, prevVirtualEnd = done, virtualEnd
			continue
		}
		if status == 200 {
			w.okTotal++
			if w.onAnswer != nil {
				w.onAnswer(w.id, sent, done, body)
			}
		}
		switch {
		case status != 200:
			w.fail(done, in, "status", fmt.Sprintf("status %d: %.200s", status, body))
		case w.check && !req.answerIs(body):
			w.fail(done, in, "decision", fmt.Sprintf("want %s %s, got %.300s", req.effect, req.reason, body))
		default:
			if !in {
				break
			}
			w.ok++
			lat := done.Sub(sent)
			if interval > 0 {
				// Latency counts from when the request was due, not when it
				// was sent, so that a slow answer that delays the next
				// request on this connection is charged to the server
				// (coordinated omission). The generator's own lateness
				// (Go's timers wake up to a millisecond late when the
				// process is idle) is not the server's doing: it is left
				// out by timing the requests on a virtual timeline where
				// each goes out when due, or when the previous answer
				// would have arrived, and takes as long as it really did.
				lat = virtualEnd.Sub(sched)
				w.lateness.record(sent.Sub(laterOf(sched, prevEnd)))
			}
			w.latency.record(lat)
		}
		prevEnd, prevVirtualEnd = done, virtualEnd
	}
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (w *worker) fail(at time.Time, in bool, kind, msg string) {
	w.errsTotal++
	w.kinds[kind]++
	if in {
		w.errs++
	}
	if len(w.events) < maxEvents {
		w.events = append(w.events, errorEvent{at: at, kind: kind, msg: msg})
	}
}

// decisionIs reports whether body is a decision with the given effect and
// reason.
func decisionIs(body []byte, effect, reason string) bool {
	e, r, ok := decisionMembers(body)
	return ok && string(e) == effect && (reason == "" || string(r) == reason)
}

// A client is one keep-alive connection.
type client struct {
	addr string
	conn net.Conn
	br   *bufio.Reader
	buf  []byte
	dead bool
	// deadline is when the connection's I/O deadline next needs moving.
	deadline time.Time
}

func dial(addr string) (*client, error) {
	c := &client{addr: addr, buf: make([]byte, 4096)}
	if err := c.connect(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *client) connect() error {
	conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
	if err != nil {
		return fmt.Errorf("dial %s: %w", c.addr, err)
	}
	c.conn = conn
	c.deadline = time.Time{}
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 16<<10)
	} else {
		c.br.Reset(conn)
	}
	c.dead = false
	return nil
}

// redial replaces a broken connection. When the server refuses, the next
// round trip fails fast and is counted; a short pause keeps a dead server
// from turning the generator into a busy loop.
func (c *client) redial() {
	c.close()
	if err := c.connect(); err != nil {
		c.dead = true
		time.Sleep(time.Millisecond)
	}
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// ioTimeout bounds one round trip so that a hung server shows up as errors
// instead of a hung benchmark.
const ioTimeout = 10 * time.Second

func (c *client) roundTrip(wire []byte) (int, []byte, error) {
	if c.dead || c.conn == nil {
		return 0, nil, fmt.Errorf("no connection to %s", c.addr)
	}
	// Setting a deadline costs a runtime timer update; refresh it only when
	// half of it has passed.
	if now := time.Now(); now.After(c.deadline) {
		c.deadline = now.Add(ioTimeout / 2)
		c.conn.SetDeadline(now.Add(ioTimeout))
	}
	if _, err := c.conn.Write(wire); err != nil {
		return 0, nil, err
	}
	r, buf, err := readResponse(c.br, c.buf)
	c.buf = buf
	if err != nil {
		return 0, nil, err
	}
	if r.close {
		c.redial()
	}
	return r.status, r.body, nil
}

// get performs one GET on a fresh connection, for set-up and probes.
func get(addr, path string) (int, []byte, error) {
	c, err := dial(addr)
	if err != nil {
		return 0, nil, err
	}
	defer c.close()
	status, body, err := c.roundTrip(encodeRequest("GET", addr, path, "", nil))
	return status, bytes.Clone(body), err
}
