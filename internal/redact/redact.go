// Package redact keeps credentials out of what flex-auth prints and
// posts: labels, reports, pull-request comments and error messages.
package redact

import (
	"net/url"
	"strings"
)

// Mask stands for a part of a URL that was taken out.
const Mask = "xxxxx"

// URL returns raw with every part that can carry a secret replaced by
// Mask: the user information, user name and password alike (a token is
// often passed as the user name), the query and the fragment. A URL with
// none of them is returned as it is, so that a label made from it stays
// the same from run to run. A string that does not parse as a URL loses
// everything from "://" to its last "@", and from its first "?" or "#"
// after that.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return redactText(raw)
	}
	if u.User == nil && u.RawQuery == "" && !u.ForceQuery && u.Fragment == "" {
		return raw
	}
	if u.User != nil {
		u.User = url.User(Mask)
	}
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery, u.ForceQuery = Mask, false
	}
	if u.Fragment != "" {
		u.Fragment, u.RawFragment = Mask, ""
	}
	return u.String()
}

func redactText(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = Mask + rest[i:]
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i+1] + Mask
	}
	return scheme + "://" + rest
}
