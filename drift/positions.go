package drift

import (
	"bytes"

	"github.com/go-json-experiment/json/jsontext"
	"gopkg.in/yaml.v3"
)

// positions maps what a change names to lines of the ACTUAL file, so that
// annotations point at the member that drifted.
type positions struct {
	top    map[string]int // top-level member -> line
	actors map[string]*actorPos
	// list is where actors live: the "actors" member, or the inventory's
	// actors: key. Added actors are annotated there.
	list int
}

type actorPos struct {
	line    int
	members map[string]int
}

// line returns the line for a change; 1 (the top of the file) when the
// file does not show the member.
func (p *positions) line(c Change) int {
	if p == nil {
		return 1
	}
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
// registry.Decode accepted: top-level members, actors and their members.
// It walks the file's tokens with jsontext and stops quietly at anything
// it does not expect.
func snapshotPositions(data []byte) *positions {
	p := &positions{top: map[string]int{}, actors: map[string]*actorPos{}}
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

// inventoryMembers maps snapshot members to the inventory keys that set
// them.
var inventoryMembers = map[string]string{
	"type":              "type",
	"principal":         "principal",
	"default_ttl_hours": "ttl_hours",
	"max_ttl_hours":     "max_ttl_hours",
	"subjects":          "subjects",
}

// inventoryPositions finds the actors of an inventory file and the keys
// that set their members. A member that comes from defaults points at the
// actor.
func inventoryPositions(data []byte) *positions {
	p := &positions{top: map[string]int{}, actors: map[string]*actorPos{}}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return p
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return p
	}
	for k := 0; k+1 < len(root.Content); k += 2 {
		key, val := root.Content[k], root.Content[k+1]
		if key.Value != "actors" || val.Kind != yaml.MappingNode {
			continue
		}
		p.list = key.Line
		for a := 0; a+1 < len(val.Content); a += 2 {
			name, settings := val.Content[a], val.Content[a+1]
			ap := &actorPos{line: name.Line, members: map[string]int{}}
			if settings.Kind == yaml.MappingNode {
				for m := 0; m+1 < len(settings.Content); m += 2 {
					for member, inv := range inventoryMembers {
						if settings.Content[m].Value == inv {
							ap.members[member] = settings.Content[m].Line
						}
					}
				}
			}
			p.actors[name.Value] = ap
		}
	}
	return p
}
