package drift

import (
	"bytes"
	"encoding/json"

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

// snapshotPositions scans a snapshot file that registry.Decode accepted.
// It is a small scanner rather than encoding/json's token stream, which
// costs about a second on a 100,000-actor file; it trusts the input to be
// valid JSON and stops quietly when it is not.
func snapshotPositions(data []byte) *positions {
	p := &positions{top: map[string]int{}, actors: map[string]*actorPos{}}
	sc := &posScanner{data: data, line: 1}
	sc.object(func(key string, line int) bool {
		p.top[key] = line
		if key != "actors" {
			return false
		}
		p.list = line
		if !sc.peek('[') {
			return false
		}
		sc.i++
		for !sc.failed {
			if sc.peek(']') {
				sc.i++
				return true
			}
			if sc.peek(',') {
				sc.i++
				continue
			}
			if !sc.peek('{') {
				return false
			}
			a := &actorPos{line: sc.line, members: map[string]int{}}
			name := ""
			sc.object(func(key string, line int) bool {
				a.members[key] = line
				if key == "name" && sc.peek('"') {
					name = sc.str()
					return true
				}
				return false
			})
			if name != "" {
				if _, dup := p.actors[name]; !dup {
					p.actors[name] = a
				}
			}
		}
		return true
	})
	return p
}

type posScanner struct {
	data   []byte
	i      int
	line   int
	failed bool
}

func (sc *posScanner) ws() {
	for sc.i < len(sc.data) {
		switch sc.data[sc.i] {
		case '\n':
			sc.line++
		case ' ', '\t', '\r':
		default:
			return
		}
		sc.i++
	}
}

// peek skips white space and reports whether the next byte is c.
func (sc *posScanner) peek(c byte) bool {
	sc.ws()
	if sc.i >= len(sc.data) {
		sc.failed = true
		return false
	}
	return sc.data[sc.i] == c
}

// str reads a string at the current position.
func (sc *posScanner) str() string {
	start := sc.i
	sc.i++
	for sc.i < len(sc.data) && sc.data[sc.i] != '"' {
		if sc.data[sc.i] == '\\' {
			sc.i++
		}
		sc.i++
	}
	if sc.i >= len(sc.data) {
		sc.failed = true
		return ""
	}
	sc.i++
	raw := sc.data[start:sc.i]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		sc.failed = true
	}
	return s
}

// object walks an object, calling member with each key and its line, with
// the scanner at the value. member reports whether it consumed the value;
// if not, object skips it.
func (sc *posScanner) object(member func(key string, line int) bool) {
	if !sc.peek('{') {
		sc.failed = true
		return
	}
	sc.i++
	for !sc.failed {
		switch {
		case sc.peek('}'):
			sc.i++
			return
		case sc.peek(','):
			sc.i++
		case sc.peek('"'):
			line := sc.line
			key := sc.str()
			if !sc.peek(':') {
				sc.failed = true
				return
			}
			sc.i++
			if !member(key, line) {
				sc.skip()
			}
		default:
			sc.failed = true
		}
	}
}

// skip skips one value.
func (sc *posScanner) skip() {
	sc.ws()
	depth := 0
	for sc.i < len(sc.data) {
		switch c := sc.data[sc.i]; c {
		case '"':
			sc.str()
			if depth == 0 {
				return
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return // the end of the enclosing object or array
			}
			depth--
			if depth == 0 {
				sc.i++
				return
			}
		case '\n':
			sc.line++
		case ',':
			if depth == 0 {
				return
			}
		}
		sc.i++
	}
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
