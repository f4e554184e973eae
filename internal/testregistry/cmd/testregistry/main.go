// Command testregistry prints the path of the CNCF distribution registry
// binary the tests run, building it first when it is not cached (see
// package testregistry), so that tests outside this module (deploy/validate)
// run the same registry:
//
//	go run ./internal/testregistry/cmd/testregistry
package main

import (
	"fmt"
	"os"

	"github.com/coulomb/flex-auth/internal/testregistry"
)

func main() {
	bin, err := testregistry.Binary()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testregistry:", err)
		os.Exit(1)
	}
	fmt.Println(bin)
}
