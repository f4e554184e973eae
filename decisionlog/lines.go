package decisionlog

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// MaxLine bounds a log line. A decision line is at most a few hundred
// kilobytes (a 64 KiB request whose every character is escaped); a longer
// line is not a record.
const MaxLine = 8 << 20

// chunkSize is how much of a log a worker takes at a time.
const chunkSize = 1 << 20

// A LineTooLongError reports a line over MaxLine bytes.
type LineTooLongError struct {
	Line int // 1-based
}

func (e *LineTooLongError) Error() string {
	return fmt.Sprintf("line %d is longer than %d bytes: not a record", e.Line, MaxLine)
}

// A chunk is a run of whole lines of a log, with what the workers made of
// each.
type chunk[T any] struct {
	data  []byte
	ends  []int // end of each line in data, its newline included
	out   []T
	done  chan struct{}
	first int // 1-based number of its first line
}

// ProcessLines reads r line by line, in chunks of about a megabyte, and
// calls a process function for each line from a pool of workers
// (GOMAXPROCS when workers is 0; each worker gets its own from
// newProcess), then consume for each line, in order, with what process
// made of it. A line is passed with its newline; the last line of r is
// passed without one when r does not end in a newline. Neither function
// may keep line. Memory is bounded by a few chunks per worker, whatever
// the size of r. ProcessLines stops at the first error from consume or
// from reading r, and returns it; a line over MaxLine bytes is a
// *LineTooLongError once the lines before it are consumed.
func ProcessLines[T any](r io.Reader, workers int, newProcess func() func(line []byte, out *T), consume func(line []byte, out *T) error) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	n := 2*workers + 2 // chunks in flight
	free := make(chan *chunk[T], n)
	for range n {
		free <- &chunk[T]{done: make(chan struct{}, 1)}
	}
	order := make(chan *chunk[T], n)
	work := make(chan *chunk[T], n)
	stop := make(chan struct{})
	var readErr error
	go func() {
		defer close(order)
		defer close(work)
		readErr = readChunks(r, free, stop, func(c *chunk[T]) {
			order <- c // never blocks: there are n chunks
			work <- c
		})
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		process := newProcess()
		go func() {
			defer wg.Done()
			for c := range work {
				if cap(c.out) < len(c.ends) {
					c.out = make([]T, len(c.ends))
				}
				c.out = c.out[:len(c.ends)]
				start := 0
				for i, end := range c.ends {
					process(c.data[start:end], &c.out[i])
					start = end
				}
				c.done <- struct{}{}
			}
		}()
	}
	var err error
	for c := range order {
		<-c.done
		start := 0
		for i, end := range c.ends {
			if err != nil {
				break
			}
			err = consume(c.data[start:end], &c.out[i])
			start = end
		}
		if err != nil && stop != nil {
			close(stop)
			stop = nil
		}
		free <- c
	}
	wg.Wait()
	if err != nil {
		return err
	}
	return readErr
}

// readChunks reads r into chunks taken from free and hands each to send,
// until r ends, a read fails, or stop is closed.
func readChunks[T any](r io.Reader, free <-chan *chunk[T], stop <-chan struct{}, send func(*chunk[T])) error {
	var carry []byte // the start of a line the last chunk did not end
	line := 1
	eof := false
	for !eof {
		var c *chunk[T]
		select {
		case c = <-free:
		case <-stop:
			return nil
		}
		data := append(c.data[:0], carry...)
		if cap(data) < chunkSize {
			data = make([]byte, len(carry), max(chunkSize, 2*len(carry)))
			copy(data, carry)
		}
		for {
			if len(data) == cap(data) {
				if len(data) > chunkSize+MaxLine {
					break // a line too long: found below
				}
				data = append(data, 0)[:len(data)]
			}
			n, err := r.Read(data[len(data):cap(data)])
			data = data[:len(data)+n]
			if err == io.EOF {
				eof = true
				break
			}
			if err != nil {
				c.data = data
				return err
			}
			if n > 0 && bytes.IndexByte(data[len(data)-n:], '\n') >= 0 && len(data) >= chunkSize/2 {
				break
			}
		}
		c.data = data
		c.ends = c.ends[:0]
		c.first = line
		start := 0
		for {
			i := bytes.IndexByte(data[start:], '\n')
			if i < 0 {
				break
			}
			if i >= MaxLine {
				send(c)
				return &LineTooLongError{Line: line + len(c.ends)}
			}
			start += i + 1
			c.ends = append(c.ends, start)
		}
		carry = append(carry[:0], data[start:]...)
		if len(carry) > MaxLine {
			send(c)
			return &LineTooLongError{Line: line + len(c.ends)}
		}
		if eof && len(carry) > 0 {
			c.ends = append(c.ends, len(data))
			carry = carry[:0]
		}
		line += len(c.ends)
		send(c)
	}
	return nil
}
