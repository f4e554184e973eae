// Package readcap reads files with a cap on their size, so that a file
// that is not what it should be (a log where a key was expected, a
// device, a runaway write) is refused rather than read into memory whole.
package readcap

import (
	"fmt"
	"io"
	"os"
)

// File reads the file at path, refusing one larger than max bytes without
// reading more than max+1.
func File(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return data, nil
}
