// Package suggest finds the "did you mean" for a misspelt key, shared by
// every parser that reports unknown keys (inventory, policy packages).
package suggest

import "strings"

// Closest returns the known key closest to key, or "" when none is close
// enough to be the likely intent. Case and dashes for underscores are
// forgiven first, since "TTL-Hours" is a common slip, and a cut-short key
// ("max_ttl") is taken as meant; otherwise the edit distance must be at
// most a third of the candidate's length.
func Closest(key string, known []string) string {
	norm := strings.ToLower(strings.ReplaceAll(key, "-", "_"))
	best, bestDist := "", 0
	for _, k := range known {
		if norm == k || len(norm) >= 3 && strings.HasPrefix(k, norm) {
			return k // "ttl_hour", "max_ttl"
		}
		d := editDistance(norm, k)
		if d <= max(1, len(k)/3) && (best == "" || d < bestDist) {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance returns the number of single-byte insertions, deletions,
// substitutions and swaps of neighbours that turn a into b (the optimal
// string alignment distance: "tpye" is one swap from "type").
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		// Keys that long are no typo of a known key; don't spend time on them.
		return max(len(a), len(b))
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
