package policy

// A TestResult is the outcome of one test case of a package's tests blocks.
type TestResult struct {
	Name string
	Line int // Markdown line of the test case
	Got  Decision
	Want Decision
	Err  error // the evaluation error behind a ReasonPolicyError, if any
}

// Passed reports whether the decision was the expected one. A test that
// expects ReasonPolicyError passes when evaluation fails.
func (r TestResult) Passed() bool { return r.Got == r.Want }

// RunTests decides every test case of the package's tests blocks against
// the bound data, in document order: a request in AuthZEN's form as Access
// decides it, one in the /v1/check form as Evaluate does.
func (e *Evaluator) RunTests() []TestResult {
	results := make([]TestResult, len(e.pkg.tests))
	for i, tc := range e.pkg.tests {
		var got Decision
		var err error
		if tc.access != nil {
			got, err = e.Access(tc.access)
		} else {
			got, err = e.Evaluate(&tc.req)
		}
		results[i] = TestResult{Name: tc.name, Line: tc.line, Got: got, Want: tc.want, Err: err}
	}
	return results
}
