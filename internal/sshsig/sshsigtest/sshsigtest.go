// Package sshsigtest makes SSH signing keys for tests.
package sshsigtest

import (
	"bytes"
	"crypto/ed25519"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/coulomb/flex-auth/internal/sshsig"
)

// Key returns an Ed25519 signer made from seed, the same key for the same
// seed, and the trusted keys holding its public key.
func Key(t testing.TB, seed byte) (ssh.Signer, *sshsig.Keys) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := sshsig.ParseKeys("trusted.pub", ssh.MarshalAuthorizedKey(s.PublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	return s, keys
}
