package inventory

import (
	"bytes"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"gopkg.in/yaml.v3"
)

// chunkSize is the size of the parts a large actors mapping is parsed in.
//
// yaml.v3 takes most of the time of parsing an inventory and builds the
// whole node tree before returning it: a 100,000-actor inventory is a
// million nodes, about 0.4 s on one core and 100 MB held at once. So a
// large, ordinarily laid-out inventory is cut at the lines where an actor
// starts, the parts are parsed on every core, a few at a time, and the
// actors are checked part by part, in file order, while later parts are
// being parsed. Only a few parts are held at once.
//
// Cutting is only done where it cannot change the result: the parts are
// whole lines of one block mapping at one indentation, and a cut can only
// fall inside something that spans lines (a quoted scalar, a flow
// collection) if that something is left unclosed, which is a syntax error
// in the part. Any error in any part (an alias of an anchor outside its
// part is one), an alias after the actors that may name an anchor of
// theirs, or anything unusual about the layout, makes Parse start again
// and parse the file as one document, so errors and results are the same
// either way; FuzzChunked and FuzzChunkedVsWhole check that.
const chunkSize = 128 << 10

// A plan says how to cut an inventory.
type plan struct {
	data []byte
	// skeleton is the inventory with the lines of the actors mapping
	// blanked out, which keeps the line numbers of what follows.
	skeleton []byte
	// actorsLine is the line of "actors:"; indent is the indentation of
	// the actor names.
	actorsLine, indent int
	chunks             []span
	// count is the number of lines where an actor starts, to size the
	// actor arrays.
	count int
}

// A span is one part: data[start:end], starting at line.
type span struct{ start, end, line int }

// planChunks returns how to cut data in parts of about size bytes, or nil
// when data is small or not laid out the ordinary way: "actors:" alone on
// a line at column 1, followed by the actor names at one indentation,
// each starting with a lower-case letter, and no line breaks other than
// "\n" (yaml.v3 also counts "\r", NEL, LS and PS, which would shift the
// lines of the parts), no directives (%TAG changes what tags mean), and
// nothing that checkEscapes has to look at.
func planChunks(data []byte, size int) *plan {
	if size <= 0 || len(data) < 2*size ||
		bytes.IndexByte(data, '\r') >= 0 || bytes.Contains(data, []byte("\u0085")) ||
		bytes.Contains(data, []byte("\u2028")) || bytes.Contains(data, []byte("\u2029")) ||
		data[0] == '%' || bytes.Contains(data, []byte("\n%")) || hasBadEscape(data) {
		return nil
	}
	// Find the only line that starts with "actors:".
	at := -1
	if bytes.HasPrefix(data, []byte("actors:")) {
		at = 0
	}
	for off := 0; ; {
		i := bytes.Index(data[off:], []byte("\nactors:"))
		if i < 0 {
			break
		}
		if at >= 0 {
			return nil
		}
		at = off + i + 1
		off = at
	}
	if at < 0 {
		return nil
	}
	lineEnd := func(i int) int {
		if j := bytes.IndexByte(data[i:], '\n'); j >= 0 {
			return i + j + 1
		}
		return len(data)
	}
	// The rest of the line may hold only blanks and a comment.
	headEnd := lineEnd(at)
	rest := data[at+len("actors:") : headEnd]
	if len(rest) > 0 && rest[0] != ' ' && rest[0] != '\t' && rest[0] != '\n' {
		return nil // "actors:x" is another key
	}
	if rest = bytes.TrimLeft(rest, " \t"); len(rest) > 0 && rest[0] != '#' && rest[0] != '\n' {
		return nil
	}
	pl := &plan{data: data, actorsLine: 1 + bytes.Count(data[:at], []byte{'\n'}), indent: -1}

	// The body: blank lines, comments and indented lines, up to the next
	// line with something at column 1.
	line := pl.actorsLine + 1
	bodyEnd := headEnd
	cur := span{start: headEnd, line: line}
	for i := headEnd; i < len(data); line++ {
		end := lineEnd(i)
		l := data[i:end]
		if len(l) > 0 && l[0] != ' ' && l[0] != '#' && l[0] != '\n' {
			break
		}
		ind := 0
		for ind < len(l) && l[ind] == ' ' {
			ind++
		}
		if ind < len(l) && l[ind] != '#' && l[ind] != '\n' {
			if pl.indent < 0 {
				pl.indent = ind
				if c := l[ind]; c < 'a' || c > 'z' {
					return nil
				}
			}
			if ind == pl.indent && 'a' <= l[ind] && l[ind] <= 'z' {
				pl.count++
				if i-cur.start >= size {
					cur.end = i
					pl.chunks = append(pl.chunks, cur)
					cur = span{start: i, line: line}
				}
			}
		}
		i, bodyEnd = end, end
	}
	if pl.indent < 0 {
		return nil
	}
	cur.end = bodyEnd
	pl.chunks = append(pl.chunks, cur)

	blank := bytes.Count(data[headEnd:bodyEnd], []byte{'\n'})
	sk := make([]byte, 0, headEnd+blank+len(data)-bodyEnd)
	sk = append(sk, data[:headEnd]...)
	for range blank {
		sk = append(sk, '\n')
	}
	pl.skeleton = append(sk, data[bodyEnd:]...)
	return pl
}

// parseChunks parses the inventory by pl. It returns false when the
// result might differ from parsing the file as one document; p is then
// spoiled.
func (p *parser) parseChunks(pl *plan) (*Inventory, bool) {
	doc, err := decodeOne(pl.skeleton)
	if err != nil || len(doc.Content) != 1 {
		return nil, false
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode || root.Style&yaml.FlowStyle != 0 || pl.aliasesActors(root) {
		return nil, false
	}
	p.plan = pl
	inv := p.inventory(root)
	// Unless every part was parsed and looked at, a problem in the parts
	// might have gone unseen.
	return inv, p.chunksDone
}

// aliasesActors reports whether an alias in the skeleton n may stand for
// an anchor of the actors mapping. A part that aliases an anchor outside
// it fails to parse, which starts the one-document parse; but an alias
// after the actors is resolved in the skeleton, which has no actors, so
// when the actors define an anchor of the same name again, the skeleton
// would resolve it to the older one and the one-document parse to the
// actors' one. An anchor is written "&name", so an alias after the actors
// whose "&name" appears nowhere in them cannot stand for one of theirs.
func (pl *plan) aliasesActors(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode {
		body := pl.data[pl.chunks[0].start:pl.chunks[len(pl.chunks)-1].end]
		return n.Line > pl.actorsLine && bytes.Contains(body, []byte("&"+n.Value))
	}
	for _, c := range n.Content {
		if pl.aliasesActors(c) {
			return true
		}
	}
	return false
}

// chunkedActors does what actors does, with the actors mapping coming in
// parts. key and n are the skeleton's "actors" and its value. It sets
// p.chunksDone once every part has been parsed and looked at; anything
// that might make the parts differ from the one-document parse leaves it
// unset.
func (p *parser) chunkedActors(key, n *yaml.Node, d *defaults) *Inventory {
	pl := p.plan
	if p.line(key) != pl.actorsLine || key.Column != 1 ||
		n.Kind != yaml.ScalarNode || n.Tag != tagNull || n.Value != "" || n.Anchor != "" || n.Style != 0 {
		return nil
	}
	p.visits++ // as actors does, resolving n
	ps := pl.parse()
	defer ps.stop()
	b := newBuilder(pl.count)
	for i, c := range pl.chunks {
		doc, err := ps.wait(i)
		if err != nil || len(doc.Content) != 1 {
			return nil
		}
		m := doc.Content[0]
		if m.Kind != yaml.MappingNode || m.Style&yaml.FlowStyle != 0 || m.Tag != "!!map" ||
			m.Anchor != "" || m.Column != pl.indent+1 {
			return nil
		}
		p.off = c.line - 1
		p.entries(b, m, d)
		p.off = 0
		ps.release(i)
	}
	p.chunksDone = true
	return p.finish(key, b)
}

// decodeOne decodes data, which must hold one YAML document.
func decodeOne(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc, next yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if err := dec.Decode(&next); err != io.EOF {
		if err == nil {
			err = errSecondDocument
		}
		return nil, err
	}
	return &doc, nil
}

type chunkError string

func (e chunkError) Error() string { return string(e) }

const errSecondDocument = chunkError("a second document")

// A parsing is the parts of a plan being parsed in the background, in
// file order, on as many goroutines as there are cores. A goroutine takes
// a token of the window before it takes the next part, so at most a
// window of parts are being parsed or waiting to be released at once.
type parsing struct {
	pl      *plan
	results []result
	next    atomic.Int64  // the next part to take
	window  chan struct{} // a token for every part taken and not released
	quit    chan struct{}
	wg      sync.WaitGroup
}

type result struct {
	doc  *yaml.Node
	err  error
	done chan struct{}
}

func (pl *plan) parse() *parsing {
	workers := min(runtime.GOMAXPROCS(0), 4)
	ps := &parsing{
		pl:      pl,
		results: make([]result, len(pl.chunks)),
		window:  make(chan struct{}, 2*workers),
		quit:    make(chan struct{}),
	}
	for i := range ps.results {
		ps.results[i].done = make(chan struct{})
	}
	for range workers {
		ps.wg.Go(ps.work)
	}
	return ps
}

// work parses parts until none is left or the parsing stops.
func (ps *parsing) work() {
	for {
		select {
		case ps.window <- struct{}{}:
		case <-ps.quit:
			return
		}
		i := int(ps.next.Add(1) - 1)
		if i >= len(ps.results) {
			<-ps.window
			return
		}
		c := ps.pl.chunks[i]
		r := &ps.results[i]
		r.doc, r.err = decodeOne(ps.pl.data[c.start:c.end])
		close(r.done)
	}
}

// wait returns part i once it is parsed.
func (ps *parsing) wait(i int) (*yaml.Node, error) {
	r := &ps.results[i]
	<-r.done
	return r.doc, r.err
}

// release lets part i be collected and the next one be parsed.
func (ps *parsing) release(i int) {
	ps.results[i].doc = nil
	<-ps.window
}

// stop ends the parsing, waiting for the parts being parsed.
func (ps *parsing) stop() {
	close(ps.quit)
	ps.wg.Wait()
}
