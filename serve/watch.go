package serve

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce is how long the watcher waits after the last change
// before reloading: editors and deploy tools change files in bursts
// (write, chmod, rename), and one reload should see the end of a burst.
const watchDebounce = 100 * time.Millisecond

// A watcher reports changes to the source's files. It watches their parent
// directories rather than the files: an atomic rename replaces the file
// (a watch on the old inode would see nothing more), and a Kubernetes
// ConfigMap volume swaps a "..data" symlink next to the files.
type watcher struct {
	fs       *fsnotify.Watcher
	names    map[string]bool // base names that matter, per directory
	changed  chan struct{}
	debounce time.Duration
	s        *Server
}

// Watch reloads the server whenever its registry or policy file changes,
// until ctx is done. A source built into the binary has no files, so
// Watch returns at once. It returns an error only when watching cannot
// start.
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
	w := &watcher{names: map[string]bool{}, changed: make(chan struct{}, 1), debounce: watchDebounce, s: s}
	files := s.source.Files()
	if len(files) == 0 {
		return w, nil
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch files: %w", err)
	}
	w.fs = fw
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			fw.Close()
			return nil, fmt.Errorf("watch %s: %w", f, err)
		}
		dir := filepath.Dir(abs)
		w.names[filepath.Join(dir, filepath.Base(abs))] = true
		if err := fw.Add(dir); err != nil {
			fw.Close()
			return nil, fmt.Errorf("watch directory %s of %s: %w", dir, f, err)
		}
	}
	return w, nil
}

func (w *watcher) logStart() {
	if w.fs == nil {
		w.s.logger.Info("watch: " + w.s.source.String() + " has no files to watch; nothing will reload on changes")
		return
	}
	w.s.logger.Info("watching the registry and policy files for changes", "files", w.s.source.Files())
}

func (w *watcher) close() {
	if w.fs != nil {
		w.fs.Close()
	}
}

// relevant reports whether an event in a watched directory may change
// what the source reads: one of the files, or a ConfigMap's "..data"
// symlink or timestamped directory (names starting with "..").
func (w *watcher) relevant(name string) bool {
	abs, err := filepath.Abs(name)
	if err != nil {
		return true
	}
	return w.names[abs] || strings.HasPrefix(filepath.Base(abs), "..")
}

// run turns bursts of events into one signal on changed, a debounce after
// the last of them.
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
			if ev.Op == fsnotify.Chmod || !w.relevant(ev.Name) {
				continue
			}
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
