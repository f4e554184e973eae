package termsafe

import (
	"context"
	"fmt"
	"log/slog"
)

// Handler returns a slog.Handler that hands every record to h with its
// message, and every string, error and other value of its attributes,
// escaped by Line: an operational log on a terminal or in a CI log, which
// carries what files and requests hold (a path, a resource name, an
// evaluation error), cannot be made to act on them. A []string stays a
// list of escaped strings.
func Handler(h slog.Handler) slog.Handler { return handler{h} }

type handler struct{ h slog.Handler }

func (h handler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Line(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(attr(a))
		return true
	})
	return h.h.Handle(ctx, out)
}

func (h handler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = attr(a)
	}
	return handler{h.h.WithAttrs(out)}
}

func (h handler) WithGroup(name string) slog.Handler { return handler{h.h.WithGroup(Line(name))} }

// attr returns a with its key and value escaped.
func attr(a slog.Attr) slog.Attr {
	a.Key = Line(a.Key)
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(Line(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, x := range g {
			out[i] = attr(x)
		}
		a.Value = slog.GroupValue(out...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			a.Value = slog.StringValue(Line(x.Error()))
		case []string:
			out := make([]string, len(x))
			for i, s := range x {
				out[i] = Line(s)
			}
			a.Value = slog.AnyValue(out)
		default:
			a.Value = slog.StringValue(Line(fmt.Sprint(x)))
		}
	default:
		a.Value = v // numbers, times, durations, booleans: nothing to escape
	}
	return a
}
