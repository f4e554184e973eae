// Package sshsig signs and verifies messages with SSH keys in the format
// that `ssh-keygen -Y sign` writes and `ssh-keygen -Y verify` reads
// (OpenSSH's PROTOCOL.sshsig): an armored "SSH SIGNATURE" block over a
// message, bound to a namespace so that a signature made for one purpose
// is never accepted for another.
//
// The wire format and the signing itself are github.com/hiddeco/sshsig's;
// this package adds what flex-auth needs around them: loading OpenSSH
// private keys, and a list of trusted public keys read from a file of
// plain public keys or in ssh-keygen's allowed_signers format, whose
// namespaces and validity options it honours, so that one file serves
// both flex-auth and an operator's `ssh-keygen -Y verify`.
package sshsig

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"

	hsig "github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"

	"github.com/coulomb/flex-auth/internal/readfile"
)

// HashAlgorithm is the hash signatures are made with: SHA-512, what
// ssh-keygen uses by default.
const HashAlgorithm = hsig.HashSHA512

// Limits on what this package reads: an OpenSSH private key is a few
// kilobytes (an RSA 16384-bit one about 13 KiB), an armored signature
// under 2 KiB; a file of trusted keys holds a few lines.
const (
	MaxPrivateKeyBytes = 64 << 10
	MaxSignatureBytes  = 16 << 10
	MaxKeysFileBytes   = 1 << 20
)

// ErrUnknownKey reports a signature by a key that is not trusted.
var ErrUnknownKey = errors.New("signed by a key that is not trusted")

// ErrBadSignature reports a signature that does not verify: not a
// signature of this message, or not in this namespace.
var ErrBadSignature = errors.New("signature does not verify")

// Sign returns the armored SSH signature of msg by signer in namespace,
// byte for byte what `ssh-keygen -Y sign -n NAMESPACE` writes for the same
// key and message (Ed25519 signatures are deterministic).
func Sign(signer ssh.Signer, namespace string, msg []byte) ([]byte, error) {
	sig, err := hsig.Sign(bytes.NewReader(msg), signer, HashAlgorithm, namespace)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return armor(sig.Marshal()), nil
}

// armor writes a signature as ssh-keygen does: base64 in lines of 70
// characters between the BEGIN and END lines.
func armor(blob []byte) []byte {
	const width = 70
	text := base64.StdEncoding.EncodeToString(blob)
	var b bytes.Buffer
	b.WriteString("-----BEGIN " + hsig.PEMType + "-----\n")
	for len(text) > width {
		b.WriteString(text[:width] + "\n")
		text = text[width:]
	}
	b.WriteString(text + "\n-----END " + hsig.PEMType + "-----\n")
	return b.Bytes()
}

// ParseSignature decodes an armored SSH signature. Anything after the
// armored block other than white space is an error.
func ParseSignature(armored []byte) (*hsig.Signature, error) {
	if len(armored) > MaxSignatureBytes {
		return nil, fmt.Errorf("signature is %d bytes, more than the %d an SSH signature takes", len(armored), MaxSignatureBytes)
	}
	block, rest := pem.Decode(armored)
	switch {
	case block == nil || block.Type != hsig.PEMType:
		return nil, errors.New(`not an SSH signature: no "-----BEGIN SSH SIGNATURE-----" block`)
	case len(bytes.TrimSpace(rest)) > 0:
		return nil, errors.New("not an SSH signature: data after the armored block")
	}
	sig, err := hsig.ParseSignature(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not an SSH signature: %w", err)
	}
	return sig, nil
}

// LoadSigner reads an OpenSSH private key file, the kind ssh-keygen
// writes (or a PEM RSA, ECDSA or PKCS #8 key). A key protected by a
// passphrase needs passphrase; nil means none.
func LoadSigner(path string, passphrase []byte) (ssh.Signer, error) {
	data, err := readfile.Read(path, readfile.Kind{Name: "SSH private key", Max: MaxPrivateKeyBytes})
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	var signer ssh.Signer
	if passphrase != nil {
		signer, err = ssh.ParsePrivateKeyWithPassphrase(data, passphrase)
	} else {
		signer, err = ssh.ParsePrivateKey(data)
	}
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return nil, fmt.Errorf("private key %s is protected by a passphrase: give it in the environment (FLEX_AUTH_SIGN_KEY_PASSPHRASE)", path)
	case err != nil:
		return nil, fmt.Errorf("private key %s: %w", path, err)
	}
	return signer, nil
}

// Fingerprint returns key's SHA256 fingerprint as ssh-keygen -l prints it
// ("SHA256:..."), with its type.
func Fingerprint(key ssh.PublicKey) string {
	return ssh.FingerprintSHA256(key) + " (" + key.Type() + ")"
}
