// Package chaos checks flex-auth's promise about its decision log under
// faults: every decision a client received is in the log, with what the
// client was given, and no allow is ever given without its log line.
//
// ReadLog and Log.Verify read decision log files and compare them with
// what clients received; Load sends decision requests from several
// workers and keeps every answer; Run drives a real `flex-auth serve`
// through load, reloads, corrupted registries, a decision log that cannot
// be written, and SIGKILL, and verifies the log at the end. The e2e tests
// and scripts/chaos use it.
package chaos
