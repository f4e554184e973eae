package policy

import (
	"errors"
	"path/filepath"

	"github.com/coulomb/flex-auth/internal/readfile"
	"github.com/coulomb/flex-auth/internal/redact"

	"github.com/coulomb/flex-auth/entities"
	"github.com/coulomb/flex-auth/registry"
)

// PackageFile is the policy package's file in a package directory: what
// serve --package DIR and policy test --package DIR read, with the data
// its front matter names beside it.
const PackageFile = "policy_package.md"

// ErrNoData reports a package whose front matter names no data, which a
// package directory needs.
var ErrNoData = errors.New("its front matter names no data: a package directory needs data: {registry: FILE} or data: {entities: FILE}")

// LoadDir loads the package in directory dir: its PackageFile and the data
// its front matter names, bound together. Each is read as readfile reads
// its kind of file (DataKind).
func LoadDir(dir string) (*Evaluator, error) {
	pkg, err := Load(filepath.Join(dir, PackageFile))
	if err != nil {
		return nil, err
	}
	ref := pkg.Data()
	if ref.Kind == "" {
		return nil, redact.Errorf("load package %s: %s: %w", dir, pkg.File(), ErrNoData)
	}
	file := filepath.Join(dir, ref.File)
	data, err := readfile.Read(file, DataKind(ref.Kind))
	if err != nil {
		return nil, redact.Errorf("load package %s: %w", dir, err)
	}
	return BindData(pkg, file, data)
}

// DataKind returns the kind of file the data of kind (DataRegistry or
// DataEntities) is, with its cap.
func DataKind(kind string) readfile.Kind {
	if kind == DataEntities {
		return readfile.Entities
	}
	return readfile.Registry
}

// BindData parses data, the file pkg's front matter names (file names it
// in messages), as the kind of data it names, and binds pkg to it.
func BindData(pkg *Package, file string, data []byte) (*Evaluator, error) {
	switch pkg.Data().Kind {
	case DataRegistry:
		snap, err := registry.Parse(data)
		if err != nil {
			var errs registry.Errors
			if errors.As(err, &errs) {
				err = &registry.FileError{File: file, Errs: errs}
			}
			return nil, redact.Errorf("load registry: %w", err)
		}
		return bindNamed(pkg, file, func() (*Evaluator, error) { return NewEvaluator(pkg, snap) })
	case DataEntities:
		doc, err := entities.Parse(file, data)
		if err != nil {
			return nil, redact.Errorf("load entities: %w", err)
		}
		return bindNamed(pkg, file, func() (*Evaluator, error) { return NewEntitiesEvaluator(pkg, doc) })
	}
	return nil, redact.Errorf("load package: %s: %w", pkg.File(), ErrNoData)
}

// bindNamed binds, naming both files in an error that is not already an
// *Error (which names the package's file and line).
func bindNamed(pkg *Package, file string, f func() (*Evaluator, error)) (*Evaluator, error) {
	e, err := f()
	var pe *Error
	if err != nil && !errors.As(err, &pe) {
		return nil, redact.Errorf("%s and %s: %w", pkg.File(), file, err)
	}
	return e, err
}
