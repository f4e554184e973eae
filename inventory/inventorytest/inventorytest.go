// Package inventorytest makes large, realistic inventories for tests and
// benchmarks of the inventory parser and of generate.
package inventorytest

import (
	"math/rand/v2"
	"strconv"
)

// Large returns a realistic inventory of n actors: mostly agents,
// then automations and a few admins; shared and own principals; TTLs from
// defaults and set per actor; some extra subjects, descriptions, comments
// and disabled actors. The same n gives the same bytes.
func Large(n int) []byte {
	r := rand.New(rand.NewPCG(1, uint64(n)))
	teams := []string{"payments", "search", "billing", "ingest", "state-hub", "interhub", "backup", "metrics", "deploy", "audit"}
	b := make([]byte, 0, n*56)
	b = append(b, "# ops-warden inventory (benchmark)\nversion: 1\ndefaults:\n  adm: {principal: adm-full, ttl_hours: 8, max_ttl_hours: 12}\n  agt: {ttl_hours: 24}\n  atm: {ttl_hours: 8, max_ttl_hours: 24}\nactors:\n"...)
	for i := range n {
		t := "agt"
		switch k := r.IntN(100); {
		case k < 5:
			t = "adm"
		case k < 40:
			t = "atm"
		}
		team := teams[r.IntN(len(teams))]
		b = append(b, "  "...)
		b = append(b, t...)
		b = append(b, '-')
		b = append(b, team...)
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ':')
		switch k := r.IntN(100); {
		case k < 30: // everything from defaults
			b = append(b, " {}\n"...)
		case k < 60: // a shared principal
			b = append(b, "\n    principal: "...)
			b = append(b, t...)
			b = append(b, '-')
			b = append(b, team...)
			b = append(b, '\n')
		case k < 80: // own TTLs
			ttl := 1 + r.IntN(12)
			b = append(b, "\n    ttl_hours: "...)
			b = strconv.AppendInt(b, int64(ttl), 10)
			b = append(b, "\n    max_ttl_hours: "...)
			b = strconv.AppendInt(b, int64(ttl*2), 10)
			b = append(b, '\n')
		case k < 92: // an extra subject
			b = append(b, "\n    subjects: [iam:role/"...)
			b = append(b, team...)
			b = append(b, "]\n"...)
		case k < 99: // a description and a comment
			b = append(b, " # owned by "...)
			b = append(b, team...)
			b = append(b, "\n    description: Runs "...)
			b = append(b, team...)
			b = append(b, " jobs.\n"...)
		default:
			b = append(b, " {disabled: true}\n"...)
		}
	}
	return b
}
