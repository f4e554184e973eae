package serve

import (
	"testing"

	"github.com/coulomb/flex-auth/policy"
)

// TestRequestLimitWithinPolicyBound checks that no request the server
// accepts is larger than the requests a policy package's cost limit is
// proven for (policy.CostLimit).
func TestRequestLimitWithinPolicyBound(t *testing.T) {
	if MaxRequestBytes > policy.MaxRequestBytes {
		t.Errorf("MaxRequestBytes is %d, over policy.MaxRequestBytes %d: a package's cost bound would not hold", MaxRequestBytes, policy.MaxRequestBytes)
	}
}
