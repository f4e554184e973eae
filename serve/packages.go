package serve

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/coulomb/flex-auth/policy"
)

// A slot is one package the server serves: where it comes from, and the
// outcome of its latest load. Each package reloads on its own: one that
// fails to load keeps its last good state, and the others do not notice.
type slot struct {
	source Source
	reload atomic.Pointer[reloadStatus]
}

// A pkgSet is every package as served at one moment, and how requests find
// theirs. It is immutable: a reload builds a new one, and a request loads
// one set and uses it from start to end.
type pkgSet struct {
	states []*state // by slot, in the order the packages were given
	byName map[string]*state
	// byType maps an AuthZEN resource type to the package that declares
	// it: where a request on a bare /access/v1/ path goes.
	byType map[string]*state
	// def is the default package: requests on bare /access/v1/ paths
	// whose resource type no package declares.
	def *state
	// check answers POST /v1/check and GET /v1/registry: the default
	// package when its data is a registry, else the first package whose
	// data is; nil when none is.
	check *state
}

// newPkgSet builds the set of states and its routes. defaultName names the
// default package; "" is the first. Two packages of one name, a resource
// type two packages declare, and a default package that is not served are
// errors.
func newPkgSet(states []*state, defaultName string) (*pkgSet, error) {
	set := &pkgSet{states: states, byName: map[string]*state{}, byType: map[string]*state{}}
	for _, st := range states {
		name := st.pkg.Name()
		if other, dup := set.byName[name]; dup {
			return nil, fmt.Errorf("two packages are named %s (%s and %s); a server serves a package once", name, other.pkg.File(), st.pkg.File())
		}
		set.byName[name] = st
		for _, typ := range st.pkg.ResourceTypes() {
			if other, dup := set.byType[typ]; dup {
				return nil, fmt.Errorf("packages %s and %s both decide resources of type %q: a request on /access/v1/ could not tell which; serve them from two servers, or give one of them other resource_types",
					other.pkg.Name(), name, typ)
			}
			set.byType[typ] = st
		}
	}
	if len(states) == 0 {
		return nil, errors.New("no package to serve")
	}
	set.def = states[0]
	if defaultName != "" {
		set.def = set.byName[defaultName]
		if set.def == nil {
			return nil, fmt.Errorf("the default package %s is not served; the packages are %s", defaultName, strings.Join(set.names(), ", "))
		}
	}
	if set.def.snap != nil {
		set.check = set.def
	} else {
		for _, st := range states {
			if st.snap != nil {
				set.check = st
				break
			}
		}
	}
	return set, nil
}

// names returns the names of the packages, in slot order.
func (set *pkgSet) names() []string {
	names := make([]string, len(set.states))
	for i, st := range set.states {
		names[i] = st.pkg.Name()
	}
	return names
}

// primary is the package /healthz's contract members (registry, policy)
// describe: the /v1/check package, else the default one.
func (set *pkgSet) primary() *state {
	if set.check != nil {
		return set.check
	}
	return set.def
}

// route returns the package of an AuthZEN request of resource type typ:
// the package its path names (pinned), else the package that declares the
// type, else the default package.
func (set *pkgSet) route(pinned *state, typ string) *state {
	if pinned != nil {
		return pinned
	}
	if st := set.byType[typ]; st != nil {
		return st
	}
	return set.def
}

// replace returns a set where slot i serves st instead, or why it cannot:
// a package keeps its name and model while served (the routes and the
// metrics are by name, and /v1/check goes to a registry), and must not
// take a resource type another package declares.
func (set *pkgSet) replace(i int, st *state, defaultName string) (*pkgSet, error) {
	old := set.states[i]
	switch {
	case st.pkg.Name() != old.pkg.Name():
		return nil, fmt.Errorf("the package is now named %s, was %s: a package keeps its name while served; restart flex-auth to rename it", st.pkg.Name(), old.pkg.Name())
	case st.pkg.Model() != old.pkg.Model():
		return nil, fmt.Errorf("the package's data is now %s, was %s: a package keeps its kind of data while served; restart flex-auth to change it", dataKind(st.pkg.Model()), dataKind(old.pkg.Model()))
	}
	states := append([]*state(nil), set.states...)
	states[i] = st
	return newPkgSet(states, defaultName)
}

// dataKind names the data of model m in messages.
func dataKind(m policy.Model) string {
	if m == policy.ModelAuthZEN {
		return "an entities document"
	}
	return "a registry"
}
