package sshsig

import (
	"crypto/ed25519"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// FuzzParseKeys feeds ParseKeys arbitrary files: it never panics, and a
// file it accepts has a key.
func FuzzParseKeys(f *testing.F) {
	pub := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINNwMHM8lLcve+HMdKmjaanRnkdOE0Sm3ZUxkjv5LTgg c"
	for _, s := range []string{pub, "p " + pub, `"a b" namespaces="flex-auth",valid-after="20260101Z" ` + pub, "# c\n\n" + pub + "\n" + pub, "p cert-authority " + pub, `p x="` + pub} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKeys("keys", data)
		if err == nil && k.Len() == 0 {
			t.Error("accepted a file without a key")
		}
	})
}

// FuzzVerify feeds Verify arbitrary signatures: it never panics, and
// never accepts a signature not made by the trusted key.
func FuzzVerify(f *testing.F) {
	_, priv, _ := ed25519.GenerateKey(nil)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		f.Fatal(err)
	}
	keys, err := ParseKeys("keys", ssh.MarshalAuthorizedKey(signer.PublicKey()))
	if err != nil {
		f.Fatal(err)
	}
	good, err := Sign(signer, namespace, []byte("m"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"))
	now := time.Now()
	f.Fuzz(func(t *testing.T, sig []byte) {
		if _, err := keys.Verify(namespace, []byte("another message"), sig, now); err == nil {
			t.Error("verified a signature of another message")
		}
	})
}
