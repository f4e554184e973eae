package sshsig

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const namespace = "flex-auth"

// sshKeygen returns the path of ssh-keygen, failing the test when it is
// not installed: the format is only proved against the real thing.
func sshKeygen(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Fatal("ssh-keygen is not installed (Debian: apt-get install openssh-client); these tests prove the format against it")
	}
	return path
}

// newKey makes a key pair of type typ with ssh-keygen in dir and returns
// the private key's path; the public key is path + ".pub".
func newKey(t *testing.T, dir, typ string) string {
	t.Helper()
	path := filepath.Join(dir, "id_"+typ)
	args := []string{"-q", "-t", typ, "-N", "", "-C", "publisher@example", "-f", path}
	if typ == "rsa" {
		args = append(args, "-b", "2048")
	}
	if out, err := exec.Command(sshKeygen(t), args...).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen %v: %v\n%s", args, err, out)
	}
	return path
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

var keyTypes = []string{"ed25519", "ecdsa", "rsa"}

// TestSSHKeygenVerifiesOurs signs with Sign and verifies with
// `ssh-keygen -Y verify`, with an allowed_signers file: what an operator
// does by hand to check a publication.
func TestSSHKeygenVerifiesOurs(t *testing.T) {
	keygen := sshKeygen(t)
	msg := []byte("flex-auth publication v1\nserial: 1\n")
	for _, typ := range keyTypes {
		t.Run(typ, func(t *testing.T) {
			dir := t.TempDir()
			key := newKey(t, dir, typ)
			signer, err := LoadSigner(key, nil)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := Sign(signer, namespace, msg)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, "msg.sig"), sig)
			allowed := filepath.Join(dir, "allowed_signers")
			writeFile(t, allowed, append([]byte("flex-auth "), readFile(t, key+".pub")...))
			verify := func(ns string, msg []byte) (string, error) {
				cmd := exec.Command(keygen, "-Y", "verify", "-f", allowed, "-I", "flex-auth", "-n", ns, "-s", filepath.Join(dir, "msg.sig"))
				cmd.Stdin = bytes.NewReader(msg)
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			if out, err := verify(namespace, msg); err != nil || !strings.Contains(out, "Good") {
				t.Errorf("ssh-keygen -Y verify: %v\n%s", err, out)
			}
			if out, err := verify("git", msg); err == nil {
				t.Errorf("ssh-keygen -Y verify -n git accepted a flex-auth signature:\n%s", out)
			}
			if out, err := verify(namespace, append(msg, 'x')); err == nil {
				t.Errorf("ssh-keygen -Y verify accepted the signature for another message:\n%s", out)
			}
		})
	}
}

// TestVerifySSHKeygens verifies with Verify what `ssh-keygen -Y sign`
// signed, against a .pub file and an allowed_signers file, and refuses it
// for another message, another namespace and another key.
func TestVerifySSHKeygens(t *testing.T) {
	keygen := sshKeygen(t)
	msg := []byte("flex-auth publication v1\nserial: 2\n")
	now := time.Now()
	for _, typ := range keyTypes {
		t.Run(typ, func(t *testing.T) {
			dir := t.TempDir()
			key := newKey(t, dir, typ)
			other := newKey(t, t.TempDir(), typ)
			msgFile := filepath.Join(dir, "statement")
			writeFile(t, msgFile, msg)
			sign := func(ns string) []byte {
				t.Helper()
				os.Remove(msgFile + ".sig")
				if out, err := exec.Command(keygen, "-Y", "sign", "-f", key, "-n", ns, msgFile).CombinedOutput(); err != nil {
					t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, out)
				}
				return readFile(t, msgFile+".sig")
			}
			sig := sign(namespace)
			pub := readFile(t, key+".pub")
			files := map[string][]byte{
				"public key":      pub,
				"allowed_signers": append([]byte("# publishers\nflex-auth,ci@example namespaces=\"flex-auth\" "), pub...),
				"two keys":        append(append(readFile(t, other+".pub"), '\n'), pub...),
			}
			for name, data := range files {
				keys, err := ParseKeys(name, data)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				got, err := keys.Verify(namespace, msg, sig, now)
				if err != nil {
					t.Errorf("%s: %v", name, err)
				} else if Fingerprint(got) == "" || !bytes.Equal(got.Marshal(), mustParsePub(t, pub)) {
					t.Errorf("%s: verified by %s, want the signing key", name, Fingerprint(got))
				}
				if _, err := keys.Verify(namespace, append(msg, '\n'), sig, now); !errors.Is(err, ErrBadSignature) {
					t.Errorf("%s: another message: got %v, want ErrBadSignature", name, err)
				}
			}
			keys, _ := ParseKeys("public key", pub)
			if _, err := keys.Verify(namespace, msg, sign("git"), now); !errors.Is(err, ErrBadSignature) {
				t.Errorf("namespace git: got %v, want ErrBadSignature", err)
			}
			others, _ := ParseKeys("other.pub", readFile(t, other+".pub"))
			_, err := others.Verify(namespace, msg, sig, now)
			if !errors.Is(err, ErrUnknownKey) {
				t.Errorf("another key: got %v, want ErrUnknownKey", err)
			}
			if err != nil && !strings.Contains(err.Error(), "SHA256:") {
				t.Errorf("another key: %v does not name the signing key's fingerprint", err)
			}
		})
	}
}

// TestSameSignatureAsSSHKeygen checks that an Ed25519 signature by Sign
// is byte for byte what ssh-keygen writes (Ed25519 is deterministic).
func TestSameSignatureAsSSHKeygen(t *testing.T) {
	keygen := sshKeygen(t)
	dir := t.TempDir()
	key := newKey(t, dir, "ed25519")
	msg := []byte("registry: sha256:00\n")
	msgFile := filepath.Join(dir, "m")
	writeFile(t, msgFile, msg)
	if out, err := exec.Command(keygen, "-Y", "sign", "-f", key, "-n", namespace, msgFile).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, out)
	}
	signer, err := LoadSigner(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := Sign(signer, namespace, msg)
	if err != nil {
		t.Fatal(err)
	}
	if theirs := readFile(t, msgFile+".sig"); !bytes.Equal(ours, theirs) {
		t.Errorf("ours:\n%s\nssh-keygen's:\n%s", ours, theirs)
	}
}

func mustParsePub(t *testing.T, pub []byte) []byte {
	t.Helper()
	k, err := ParseKeys("pub", pub)
	if err != nil {
		t.Fatal(err)
	}
	return k.entries[0].key.Marshal()
}

// TestLoadSignerPassphrase loads a key protected by a passphrase with it,
// and says what to do without it.
func TestLoadSignerPassphrase(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	if out, err := exec.Command(sshKeygen(t), "-q", "-t", "ed25519", "-N", "s3cret", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	if _, err := LoadSigner(key, nil); err == nil || !strings.Contains(err.Error(), "FLEX_AUTH_SIGN_KEY_PASSPHRASE") {
		t.Errorf("no passphrase: got %v, want an error naming FLEX_AUTH_SIGN_KEY_PASSPHRASE", err)
	}
	if _, err := LoadSigner(key, []byte("wrong")); err == nil {
		t.Error("a wrong passphrase loaded the key")
	}
	if _, err := LoadSigner(key, []byte("s3cret")); err != nil {
		t.Errorf("the passphrase: %v", err)
	}
	writeFile(t, filepath.Join(dir, "big"), bytes.Repeat([]byte("x"), MaxPrivateKeyBytes+1))
	if _, err := LoadSigner(filepath.Join(dir, "big"), nil); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("an oversized file: got %v", err)
	}
}

// TestKeysOptions checks the allowed_signers options: namespaces and the
// validity period restrict a key as ssh-keygen does.
func TestKeysOptions(t *testing.T) {
	dir := t.TempDir()
	key := newKey(t, dir, "ed25519")
	signer, err := LoadSigner(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := strings.TrimSpace(string(readFile(t, key+".pub")))
	msg := []byte("m")
	sig, err := Sign(signer, namespace, msg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, line string
		ok         bool
	}{
		{"no options", "p " + pub, true},
		{"quoted principals", `"a b,c" ` + pub, true},
		{"namespace listed", `p namespaces="git,flex-auth" ` + pub, true},
		{"namespace by wildcard", `p namespaces="flex-*" ` + pub, true},
		{"namespace not listed", `p namespaces="git" ` + pub, false},
		{"namespace negated", `p namespaces="*,!flex-auth" ` + pub, false},
		{"keyword case", `p NAMESPACES="flex-auth" ` + pub, true},
		{"valid after, before now", `p valid-after="20260101Z" ` + pub, true},
		{"valid after, after now", `p valid-after="20260601120001Z" ` + pub, false},
		{"valid before, after now", `p valid-before="202606011300Z" ` + pub, true},
		{"valid before, before now", `p valid-before="20260531Z" ` + pub, false},
		{"both", `p namespaces="flex-auth",valid-after="20260101Z",valid-before="20270101Z" ` + pub, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParseKeys("allowed_signers", []byte(tt.line+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = keys.Verify(namespace, msg, sig, now)
			switch {
			case tt.ok && err != nil:
				t.Errorf("got %v, want the key to verify", err)
			case !tt.ok && !errors.Is(err, ErrUnknownKey):
				t.Errorf("got %v, want ErrUnknownKey", err)
			case !tt.ok && !strings.Contains(err.Error(), "allowed_signers:1"):
				t.Errorf("got %v, want the refusing line named", err)
			}
		})
	}
}

// TestParseKeysErrors checks that a bad line is reported with its file
// and line number.
func TestParseKeysErrors(t *testing.T) {
	pub := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINNwMHM8lLcve+HMdKmjaanRnkdOE0Sm3ZUxkjv5LTgg c"
	tests := []struct{ name, data, want string }{
		{"empty", "# nothing\n\n", "keys: no public key in the file"},
		{"not a key", "# ok\nhello\n", "keys:2: "},
		{"bad base64", "ssh-ed25519 AAAA!!!\n", "keys:1: not an OpenSSH public key"},
		{"cert-authority", "p cert-authority " + pub + "\n", "keys:1: cert-authority: certificates are not supported"},
		{"unknown option", "p restrict " + pub + "\n", `keys:1: unsupported option "restrict"`},
		{"unquoted value", "p namespaces=flex-auth " + pub + "\n", "keys:1: option namespaces: the value must be in double quotes"},
		{"bad time", `p valid-after="2026" ` + pub + "\n", `keys:1: option valid-after: "2026" is not YYYYMMDD`},
		{"options without principals", `namespaces="x" ` + pub + "\n", "keys:1: "},
		{"open quote", `"p ` + pub + "\n", "keys:1: principals: missing closing quote"},
		{"authorized_keys options", `from="10.0.0.1" ` + pub + "\n", "keys:1: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKeys("keys", []byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if k, err := ParseKeys("keys", []byte(pub+"\n\n  "+pub+"  \n")); err != nil || k.Len() != 2 {
		t.Errorf("two keys with blank lines: got %v, %v", k, err)
	}
}

// TestParseSignature refuses what is not one armored SSH signature.
func TestParseSignature(t *testing.T) {
	dir := t.TempDir()
	signer, err := LoadSigner(newKey(t, dir, "ed25519"), nil)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := Sign(signer, namespace, []byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "no \"-----BEGIN SSH SIGNATURE-----\" block"},
		{"another PEM type", bytes.Replace(sig, []byte("SSH SIGNATURE"), []byte("CERTIFICATE"), 2), "no \"-----BEGIN SSH SIGNATURE-----\""},
		{"trailing data", append(bytes.Clone(sig), "more"...), "data after the armored block"},
		{"too large", bytes.Repeat([]byte("x"), MaxSignatureBytes+1), "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSignature(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := ParseSignature(append(bytes.Clone(sig), "\n\n"...)); err != nil {
		t.Errorf("trailing newlines: %v", err)
	}
}

func TestMatchList(t *testing.T) {
	tests := []struct {
		s, list string
		want    bool
	}{
		{"flex-auth", "flex-auth", true},
		{"flex-auth", "git,flex-auth", true},
		{"flex-auth", "git", false},
		{"flex-auth", "*", true},
		{"flex-auth", "flex-?uth", true},
		{"flex-auth", "flex-*-log", false},
		{"flex-auth-log", "flex-*-log", true},
		{"flex-auth", "*,!flex-auth", false},
		{"flex-auth", "!git", false},
		{"flex-auth", "", false},
	}
	for _, tt := range tests {
		if got := matchList(tt.s, tt.list); got != tt.want {
			t.Errorf("matchList(%q, %q) = %v, want %v", tt.s, tt.list, got, tt.want)
		}
	}
}
