package decisionlog

import (
	"fmt"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/crypto/ssh"

	"github.com/coulomb/flex-auth/internal/sshsig"
)

// Namespace is the SSH signature namespace of checkpoints: `ssh-keygen -Y
// verify -n flex-auth-log`. A signature made for anything else (a
// publication, a commit) is never taken for a checkpoint, nor the other
// way round.
const Namespace = "flex-auth-log"

// CheckpointMessage returns the text a checkpoint signs: the head of the
// chain at the line before the checkpoint (the seq of the last record, the
// hash of the last line) and the checkpoint's time,
//
//	flex-auth-log checkpoint seq=41 head=sha256:... time=2026-06-24T09:12:05.123456789Z
//
// in one line without a newline: what the record's "checkpoint" member
// holds, and what `ssh-keygen -Y verify` reads on its standard input.
func CheckpointMessage(h Head, t time.Time) []byte {
	b := append([]byte(nil), "flex-auth-log checkpoint seq="...)
	b = strconv.AppendUint(b, h.Seq, 10)
	b = append(b, " head="...)
	b = h.Hash.AppendText(b)
	b = append(b, " time="...)
	return AppendTime(b, t)
}

// A Signer signs checkpoints with an SSH key.
type Signer struct {
	key         ssh.Signer
	fingerprint string
}

// NewSigner returns a Signer signing with key.
func NewSigner(key ssh.Signer) *Signer {
	return &Signer{key: key, fingerprint: ssh.FingerprintSHA256(key.PublicKey())}
}

// Fingerprint returns the key's SHA256 fingerprint, as ssh-keygen -l
// prints it.
func (s *Signer) Fingerprint() string { return s.fingerprint }

// AppendCheckpoint appends the start of a checkpoint record (AppendChain
// ends it) signing the chain's head h at t:
//
//	{"time":"...","checkpoint":"flex-auth-log checkpoint seq=... head=... time=...","signature":"-----BEGIN SSH SIGNATURE-----\n...","key":"SHA256:..."
//
// The signature is the armored SSH signature of the checkpoint text in
// Namespace; key names the signing key, for people (verification uses
// the trusted keys, not this member).
func (s *Signer) AppendCheckpoint(b []byte, t time.Time, h Head) ([]byte, error) {
	msg := CheckpointMessage(h, t)
	sig, err := sshsig.Sign(s.key, Namespace, msg)
	if err != nil {
		return b, fmt.Errorf("sign checkpoint: %w", err)
	}
	b = append(b, `{"time":"`...)
	b = AppendTime(b, t)
	b = append(b, `","checkpoint":`...)
	b, _ = jsontext.AppendQuote(b, msg)
	b = append(b, `,"signature":`...)
	b, _ = jsontext.AppendQuote(b, sig)
	b = append(b, `,"key":`...)
	b, _ = jsontext.AppendQuote(b, s.fingerprint)
	return b, nil
}
