package redact

import (
	"errors"
	"fmt"
)

// Hidden stands for a value left out of a message: what a file or a
// request held.
const Hidden = "<redacted>"

// A Redacter has a form that leaves out what files and requests hold:
// an error whose message quotes a value from a file, or a value itself.
// The redacted form still says where and which rule was broken.
type Redacter interface {
	Redacted() string
}

// Value marks v as read from a file or a request, in the arguments of
// Errorf and Sprintf: the message shows it as fmt would, its redacted
// form shows Hidden.
func Value(v any) any { return value{v} }

type value struct{ v any }

func (x value) Format(f fmt.State, verb rune) { fmt.Fprintf(f, fmt.FormatString(f, verb), x.v) }

func (value) Redacted() string { return Hidden }

// A Text is a phrase with a form for each audience: "the integer 0" and
// "an integer".
type Text struct{ full, redacted string }

// Pair returns the phrase full, whose redacted form is redacted.
func Pair(full, redacted string) Text { return Text{full, redacted} }

func (t Text) String() string { return t.full }

// Redacted returns the phrase without the value.
func (t Text) Redacted() string { return t.redacted }

// An errorPair is an error message with its redacted form.
type errorPair struct {
	err      error
	redacted string
}

func (e *errorPair) Error() string    { return e.err.Error() }
func (e *errorPair) Unwrap() error    { return e.err }
func (e *errorPair) Redacted() string { return e.redacted }

// Errorf returns fmt.Errorf(format, args...) with a redacted form, the
// same message formatted with each argument that is a Redacter (a Value,
// a Text, an error with a redacted form) in its redacted form. errors.Is
// and errors.As see what fmt.Errorf's error wraps.
func Errorf(format string, args ...any) error {
	return &errorPair{fmt.Errorf(format, args...), fmt.Errorf(format, redactArgs(args)...).Error()}
}

// Sprintf returns fmt.Sprintf(format, args...) and its redacted form, as
// Errorf makes it.
func Sprintf(format string, args ...any) (full, redacted string) {
	return fmt.Sprintf(format, args...), fmt.Sprintf(format, redactArgs(args)...)
}

// Error returns err with the redacted form redacted, for a message that
// reads better said another way than with its values left out.
func Error(err error, redacted string) error { return &errorPair{err, redacted} }

// Message returns err's message without what files and requests hold:
// its redacted form when it has one; else that of the first error in its
// tree that has one, without the words of the errors that wrap it (they
// may quote it); else err.Error(), the message of an error that quotes no
// file (an operating system's, flex-auth's own).
func Message(err error) string {
	if r, ok := err.(Redacter); ok {
		return r.Redacted()
	}
	var r Redacter
	if errors.As(err, &r) {
		return r.Redacted()
	}
	return err.Error()
}

// redactArgs replaces every Redacter, and every error, by its redacted
// form.
func redactArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch a := a.(type) {
		case error:
			out[i] = verbatim(Message(a))
		case Redacter:
			out[i] = verbatim(a.Redacted())
		default:
			out[i] = a
		}
	}
	return out
}

// verbatim prints as itself whatever the verb (%q does not quote Hidden),
// and is an error, so that %w takes it.
type verbatim string

func (v verbatim) Format(f fmt.State, _ rune) { f.Write([]byte(v)) }
func (v verbatim) Error() string              { return string(v) }
