//go:build benchprof

package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
)

// A binary built with the benchprof tag serves net/http/pprof on the
// loopback address in FLEX_AUTH_PPROF_ADDR, so that scripts/bench -profile
// can profile the real serve command under load. Release builds never
// contain this file.
func init() {
	addr := os.Getenv("FLEX_AUTH_PPROF_ADDR")
	if addr == "" {
		return
	}
	if host, _, err := net.SplitHostPort(addr); err != nil || net.ParseIP(host) == nil || !net.ParseIP(host).IsLoopback() {
		fmt.Fprintf(os.Stderr, "flex-auth: FLEX_AUTH_PPROF_ADDR %q: want a loopback host:port\n", addr)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "flex-auth: pprof:", err)
		os.Exit(1)
	}
	go http.Serve(ln, nil)
}
