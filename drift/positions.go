package drift

import (
	"bytes"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/coulomb/flex-auth/inventory"
)

// positions maps what a change names to lines of the ACTUAL file, so that
// annotations point at the member that drifted.
type positions interface {
	// line returns the line for a change; 1 (the top of the file) when
	// the file does not show the member.
	line(c Change) int
}

// snapshotLines are the positions of a snapshot file.
type snapshotLines struct {
	top    map[string]int // top-level member -> line
	actors map[string]*actorPos
	// list is the line of the "actors" member, where added actors are
	// annotated.
	list int
}

type actorPos struct {
	line    int
	members map[string]int
}

func (p *snapshotLines) line(c Change) int {
	if c.Actor == "" {
		if l := p.top[c.Member]; l > 0 {
			return l
		}
		return 1
	}
	a := p.actors[c.Actor]
	if a == nil {
		return max(p.list, 1)
	}
	if l := a.members[c.Member]; l > 0 {
		return l
	}
	return a.line
}

// snapshotPositions finds the lines of the members of a snapshot file that
// registry.ParseUnverified accepted: top-level members, actors and their members.
// It walks the file's tokens with jsontext and stops quietly at anything
// it does not expect.
func snapshotPositions(data []byte) *snapshotLines {
	p := &snapshotLines{top: map[string]int{}, actors: map[string]*actorPos{}}
	w := &lineWalker{data: data, line: 1}
	w.dec.Reset(bytes.NewBuffer(data))
	w.object(func(key string, line int) bool {
		p.top[key] = line
		if key != "actors" || w.dec.PeekKind() != '[' {
			return false
		}
		p.list = line
		if _, err := w.dec.ReadToken(); err != nil {
			return true
		}
		for w.dec.PeekKind() == '{' {
			a := &actorPos{line: w.nextLine(), members: map[string]int{}}
			name := ""
			w.object(func(key string, line int) bool {
				a.members[key] = line
				if key != "name" || w.dec.PeekKind() != '"' {
					return false
				}
				v, err := w.dec.ReadValue()
				if err == nil {
					b, _ := jsontext.AppendUnquote(nil, v)
					name = string(b)
				}
				return true
			})
			if _, dup := p.actors[name]; name != "" && !dup {
				p.actors[name] = a
			}
		}
		w.dec.ReadToken() // ']'
		return true
	})
	return p
}

// A lineWalker reads JSON tokens and knows the line of the last one.
type lineWalker struct {
	dec  jsontext.Decoder
	data []byte
	line int   // the line of byte off
	off  int64 // where lines were counted to
}

// lineAt returns the 1-based line of byte offset off, which must not be
// before the offset of the last call.
func (w *lineWalker) lineAt(off int64) int {
	w.line += bytes.Count(w.data[w.off:off], []byte{'\n'})
	w.off = off
	return w.line
}

// nextLine returns the line of the next token.
func (w *lineWalker) nextLine() int {
	rest := w.data[w.dec.InputOffset():]
	return w.lineAt(int64(len(w.data) - len(bytes.TrimLeft(rest, ", \t\r\n"))))
}

// object walks the object at the decoder's position, calling member with
// each member name and its line, with the decoder at the value. member
// reports whether it read the value; if not, object skips it.
func (w *lineWalker) object(member func(key string, line int) bool) {
	if w.dec.PeekKind() != '{' {
		return
	}
	if _, err := w.dec.ReadToken(); err != nil {
		return
	}
	for w.dec.PeekKind() == '"' {
		k, err := w.dec.ReadValue()
		if err != nil {
			return
		}
		key, _ := jsontext.AppendUnquote(nil, k)
		// A member name cannot span lines: it is on the line it ends on.
		if !member(string(key), w.lineAt(w.dec.InputOffset())) {
			if w.dec.SkipValue() != nil {
				return
			}
		}
	}
	w.dec.ReadToken() // '}'
}

// inventoryLines are the positions of an inventory file, as the inventory
// recorded them: its actors, enabled or not, and the keys of their own
// settings.
type inventoryLines struct {
	inv    *inventory.Inventory
	actors map[string]*inventory.Actor
}

func inventoryPositions(inv *inventory.Inventory) *inventoryLines {
	p := &inventoryLines{inv: inv, actors: make(map[string]*inventory.Actor, len(inv.Actors)+len(inv.Disabled))}
	for _, actors := range [][]inventory.Actor{inv.Actors, inv.Disabled} {
		for i := range actors {
			p.actors[actors[i].Name] = &actors[i]
		}
	}
	return p
}

// line returns the line of the key that sets a member in the actor's own
// settings; the actor's when the member comes from defaults or the name;
// the actors key's for an actor the inventory does not have; 1 for a
// top-level member, which no key sets (source, policy_package).
func (p *inventoryLines) line(c Change) int {
	if c.Actor == "" {
		return 1
	}
	a := p.actors[c.Actor]
	if a == nil {
		return max(p.inv.ActorsLine, 1)
	}
	l := 0
	switch c.Member {
	case "type":
		l = a.KeyLines.Type
	case "principal":
		l = a.KeyLines.Principal
	case "default_ttl_hours":
		l = a.KeyLines.TTLHours
	case "max_ttl_hours":
		l = a.KeyLines.MaxTTLHours
	case "subjects":
		l = a.KeyLines.Subjects
	}
	if l > 0 {
		return l
	}
	return a.Line
}

// topOnly is the positions of a side that is no file: every change is at
// the top.
type topOnly struct{}

func (topOnly) line(Change) int { return 1 }
