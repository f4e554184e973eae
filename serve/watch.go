package serve

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce is how long the watcher waits after the last change
// before reloading: editors and deploy tools change files in bursts
// (write, chmod, rename), and one reload should see the end of a burst.
const watchDebounce = 100 * time.Millisecond

// A watcher reports changes to the packages' files. It watches their
// parent directories rather than the files: an atomic rename replaces the
// file (a watch on the old inode would see nothing more), and a Kubernetes
// ConfigMap volume swaps a "..data" symlink next to the files. A package
// directory is watched as a whole. Each change marks the packages it may
// change; only those reload.
type watcher struct {
	fs *fsnotify.Watcher
	// names maps the path of a file that matters to the slots that read
	// it; dirs maps a watched directory to the slots that read files in
	// it, and all to those that read all of it (package directories).
	names    map[string][]int
	dirs     map[string][]int
	all      map[string][]int
	changed  chan struct{}
	debounce time.Duration
	s        *Server

	mu    sync.Mutex
	dirty map[int]bool // slots changed since the last take
}

// Watch reloads the server's packages whenever their files change, until
// ctx is done. A source built into the binary has no files, so Watch
// returns at once when every source is. It returns an error only when
// watching cannot start.
func (s *Server) Watch(ctx context.Context) error {
	w, err := s.newWatcher()
	if err != nil {
		return err
	}
	defer w.close()
	w.logStart()
	s.reloadLoop(ctx, nil, w)
	return nil
}

func (s *Server) newWatcher() (*watcher, error) {
	w := &watcher{names: map[string][]int{}, dirs: map[string][]int{}, all: map[string][]int{},
		changed: make(chan struct{}, 1), debounce: watchDebounce, s: s, dirty: map[int]bool{}}
	var fw *fsnotify.Watcher
	for i, sl := range s.slots {
		for _, f := range sl.source.Files() {
			if fw == nil {
				var err error
				if fw, err = fsnotify.NewWatcher(); err != nil {
					return nil, fmt.Errorf("watch files: %w", err)
				}
				w.fs = fw
			}
			abs, err := filepath.Abs(f)
			if err != nil {
				fw.Close()
				return nil, fmt.Errorf("watch %s: %w", f, err)
			}
			dir := filepath.Dir(abs)
			if sl.source.Package != "" {
				dir = abs
				w.all[dir] = append(w.all[dir], i)
			} else {
				w.names[abs] = append(w.names[abs], i)
			}
			w.dirs[dir] = append(w.dirs[dir], i)
			if err := fw.Add(dir); err != nil {
				fw.Close()
				return nil, fmt.Errorf("watch directory %s of %s: %w", dir, f, err)
			}
		}
	}
	return w, nil
}

func (w *watcher) logStart() {
	if w.fs == nil {
		w.s.logger.Info("watch: the packages served have no files to watch; nothing will reload on changes")
		return
	}
	var files []string
	for _, sl := range w.s.slots {
		files = append(files, sl.source.Files()...)
	}
	w.s.logger.Info("watching the packages' files for changes", "files", files)
}

func (w *watcher) close() {
	if w.fs != nil {
		w.fs.Close()
	}
}

// relevant returns the slots an event in a watched directory may change:
// those that read the file, or all of the directory, and for a
// ConfigMap's "..data" symlink or timestamped directory (names starting
// with "..") every slot that reads a file in that directory.
func (w *watcher) relevant(name string) []int {
	abs, err := filepath.Abs(name)
	if err != nil {
		var every []int
		for i := range w.s.slots {
			every = append(every, i)
		}
		return every
	}
	dir := filepath.Dir(abs)
	slots := append(slices.Clone(w.names[abs]), w.all[dir]...)
	if strings.HasPrefix(filepath.Base(abs), "..") {
		slots = append(slots, w.dirs[dir]...)
	}
	return slots
}

// take returns the slots changed since the last take, sorted, and forgets
// them.
func (w *watcher) take() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var slots []int
	for i := range w.dirty {
		slots = append(slots, i)
	}
	clear(w.dirty)
	slices.Sort(slots)
	return slots
}

// run turns bursts of events into one signal on changed, a debounce after
// the last of them, with the slots they changed to take.
func (w *watcher) run(ctx context.Context) {
	if w.fs == nil {
		return
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			slots := w.relevant(ev.Name)
			if len(slots) == 0 {
				continue
			}
			w.mu.Lock()
			for _, i := range slots {
				w.dirty[i] = true
			}
			w.mu.Unlock()
			timer.Reset(w.debounce)
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			w.s.logger.Warn("file watch error; SIGHUP still reloads", "err", err)
		case <-timer.C:
			select {
			case w.changed <- struct{}{}:
			default: // a reload is already pending
			}
		}
	}
}
