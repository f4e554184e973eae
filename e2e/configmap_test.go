package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A configMapVolume is a directory laid out and updated the way the
// kubelet's atomic writer lays out a ConfigMap volume: the files are in a
// timestamped directory ("..2026_06_24_09_12_03.123456789"), "..data" is
// a symlink to it, and each key is a symlink through "..data". An update
// writes a new timestamped directory, points a "..data_tmp" symlink at
// it, renames that over "..data" (the one atomic step), and removes the
// old directory.
type configMapVolume struct {
	t   *testing.T
	Dir string
	gen string // the timestamped directory ..data points at
}

// newConfigMapVolume lays out a volume holding files in a new temporary
// directory.
func newConfigMapVolume(t *testing.T, files map[string][]byte) *configMapVolume {
	t.Helper()
	v := &configMapVolume{t: t, Dir: t.TempDir()}
	v.update(files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), v.Path(name)); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// Path returns the path of a key's file, as a container sees it.
func (v *configMapVolume) Path(key string) string { return filepath.Join(v.Dir, key) }

// update swaps the volume to a new generation holding files, and returns
// the time just before the swap. nil files points ..data at a generation
// that does not exist, as a kubelet interrupted between its steps would
// leave it.
func (v *configMapVolume) update(files map[string][]byte) time.Time {
	v.t.Helper()
	gen := "..missing-generation"
	if files != nil {
		dir, err := os.MkdirTemp(v.Dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
		if err != nil {
			v.t.Fatal(err)
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				v.t.Fatal(err)
			}
		}
		gen = filepath.Base(dir)
	}
	since := time.Now()
	tmp := filepath.Join(v.Dir, "..data_tmp")
	if err := os.Symlink(gen, tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.Dir, "..data")); err != nil {
		v.t.Fatal(err)
	}
	if v.gen != "" {
		if err := os.RemoveAll(filepath.Join(v.Dir, v.gen)); err != nil {
			v.t.Fatal(err)
		}
	}
	v.gen = gen
	return since
}
