// Package e2e holds the contract tests of flex-auth (CONTRACT sections 4
// and 6): they build the real binary once, start `flex-auth serve` on a
// free port, and talk to it over TCP the way an operator's curl, warden
// sign and the check and smoke commands do. It has no code outside its
// tests; `go test -short` skips them. Beside it, e2e/chaos is the
// fault-injection harness its fault tests and scripts/chaos share.
package e2e
