// Package prcomment keeps one sticky comment on a GitHub pull request: it
// finds the comment by a hidden marker and edits it in place, so that a
// pull request never collects more than one comment per marker however
// often CI runs. It is the only package that talks to GitHub.
package prcomment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/coulomb/flex-auth/internal/redact"
	"github.com/google/go-github/v62/github"
)

// MaxBody is the most characters GitHub accepts in a comment body.
const MaxBody = 65536

// A Config says where to comment and as whom. cmd/ fills it from the
// GITHUB_* variables of an Actions run.
type Config struct {
	Token string
	// Owner and Repo name the repository ("coulomb", "flex-auth").
	Owner, Repo string
	// Number is the pull request's number.
	Number int
	// APIURL is the REST API's base URL: https://api.github.com, or
	// https://HOST/api/v3 for GitHub Enterprise Server. "" means github.com.
	APIURL string
	// HTTPClient, if not nil, sends the requests.
	HTTPClient *http.Client
}

// An Action says what Upsert did.
type Action string

// The actions of Upsert.
const (
	Created   Action = "created"
	Updated   Action = "updated"
	Unchanged Action = "unchanged" // the comment already said this
	Skipped   Action = "skipped"   // no comment, and none was wanted
)

// A Result reports what Upsert did, and to which comment.
type Result struct {
	Action Action
	ID     int64
	URL    string
}

// Marker returns the hidden HTML comment that identifies the sticky
// comment for key, such as a file path.
func Marker(key string) string {
	// "--" and ">" could end the HTML comment early; escaping "%" too
	// keeps distinct keys distinct.
	return "<!-- flex-auth-drift: " + markerEscaper.Replace(key) + " -->"
}

var markerEscaper = strings.NewReplacer("%", "%25", "--", "-%2D", ">", "%3E", "\n", "%0A", "\r", "%0D")

// Room returns how many bytes of body fit in a comment for key, next to
// its marker.
func Room(key string) int { return MaxBody - len(Marker(key)) - 1 }

// cutNote ends a body that Upsert had to cut.
const cutNote = "\n\n_This comment was cut to fit GitHub's limit of 65,536 characters._\n"

// Upsert makes the pull request's comment for key say body: it edits the
// comment that carries key's marker, or, when there is none and create
// is true, creates it. With create false and no comment, it does nothing:
// a pull request that never drifted gets no "all good" noise. A body too
// long for GitHub is cut at a line, with a note. Errors carry GitHub's
// message.
func Upsert(ctx context.Context, cfg Config, key, body string, create bool) (Result, error) {
	client, err := newClient(cfg)
	if err != nil {
		return Result{}, err
	}
	marker := Marker(key)
	full := fit(marker + "\n" + body)
	pr := fmt.Sprintf("%s/%s#%d", cfg.Owner, cfg.Repo, cfg.Number)

	existing, err := find(ctx, client, cfg, marker)
	if err != nil {
		return Result{}, fmt.Errorf("list comments of %s: %w", pr, err)
	}
	switch {
	case existing != nil && existing.GetBody() == full:
		return Result{Unchanged, existing.GetID(), existing.GetHTMLURL()}, nil
	case existing != nil:
		c, _, err := client.Issues.EditComment(ctx, cfg.Owner, cfg.Repo, existing.GetID(), &github.IssueComment{Body: &full})
		if err != nil {
			return Result{}, fmt.Errorf("edit comment %d on %s: %w", existing.GetID(), pr, err)
		}
		return Result{Updated, c.GetID(), c.GetHTMLURL()}, nil
	case !create:
		return Result{Action: Skipped}, nil
	}
	c, _, err := client.Issues.CreateComment(ctx, cfg.Owner, cfg.Repo, cfg.Number, &github.IssueComment{Body: &full})
	if err != nil {
		return Result{}, fmt.Errorf("create comment on %s: %w", pr, err)
	}
	return Result{Created, c.GetID(), c.GetHTMLURL()}, nil
}

func newClient(cfg Config) (*github.Client, error) {
	if cfg.Token == "" {
		return nil, errors.New("no GitHub token")
	}
	if cfg.Owner == "" || cfg.Repo == "" || cfg.Number <= 0 {
		return nil, fmt.Errorf("no pull request: repository %q/%q, number %d", cfg.Owner, cfg.Repo, cfg.Number)
	}
	client := github.NewClient(cfg.HTTPClient).WithAuthToken(cfg.Token)
	if cfg.APIURL != "" {
		// go-github wants the trailing slash; WithEnterpriseURLs would
		// also append /api/v3/, which GITHUB_API_URL already has on
		// GitHub Enterprise Server and must not get on github.com.
		u, err := url.Parse(strings.TrimRight(cfg.APIURL, "/") + "/")
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("invalid GitHub API URL %q", redact.URL(cfg.APIURL))
		}
		// The token authenticates; credentials in the URL would not be
		// sent, and would show in go-github's errors, which quote it.
		u.User = nil
		client.BaseURL = u
	}
	return client, nil
}

// find returns the oldest comment whose body starts with marker, reading
// every page.
func find(ctx context.Context, client *github.Client, cfg Config, marker string) (*github.IssueComment, error) {
	opt := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100}}
	for {
		comments, resp, err := client.Issues.ListComments(ctx, cfg.Owner, cfg.Repo, cfg.Number, opt)
		if err != nil {
			return nil, err
		}
		for _, c := range comments {
			if b := c.GetBody(); b == marker || strings.HasPrefix(b, marker+"\n") || strings.HasPrefix(b, marker+"\r\n") {
				return c, nil
			}
		}
		if resp.NextPage == 0 {
			return nil, nil
		}
		opt.Page = resp.NextPage
	}
}

// fit cuts body to GitHub's limit at a line boundary, with a note.
func fit(body string) string {
	if utf8.RuneCountInString(body) <= MaxBody {
		return body
	}
	// Count in runes: GitHub's limit is in characters.
	room := MaxBody - utf8.RuneCountInString(cutNote)
	cut, runes := body, 0
	for i := range body {
		if runes == room {
			cut = body[:i]
			break
		}
		runes++
	}
	if i := strings.LastIndexByte(cut, '\n'); i > 0 {
		cut = cut[:i]
	}
	return cut + cutNote
}

// EventNumber returns the pull request number from the JSON of the event
// that started a workflow (the file at GITHUB_EVENT_PATH):
// pull_request.number, or issue.number for a comment on a pull request.
// The event is GitHub's format, not ours, read as go-github reads GitHub's
// JSON, with encoding/json: leniently, two members only of a large
// document that GitHub extends as it likes. flex-auth's own formats are
// read strictly with go-json-experiment/json.
func EventNumber(event []byte) (int, error) {
	var ev struct {
		PullRequest *struct {
			Number int `json:"number"`
		} `json:"pull_request"`
		Issue *struct {
			Number      int             `json:"number"`
			PullRequest json.RawMessage `json:"pull_request"`
		} `json:"issue"`
	}
	if err := json.Unmarshal(event, &ev); err != nil {
		return 0, fmt.Errorf("read event: %w", err)
	}
	switch {
	case ev.PullRequest != nil && ev.PullRequest.Number > 0:
		return ev.PullRequest.Number, nil
	case ev.Issue != nil && ev.Issue.Number > 0 && len(ev.Issue.PullRequest) > 0 && string(ev.Issue.PullRequest) != "null":
		return ev.Issue.Number, nil
	case ev.Issue != nil:
		return 0, fmt.Errorf("event is about issue #%d, which is not a pull request", ev.Issue.Number)
	}
	return 0, errors.New("event has no pull_request.number nor issue.number: run on pull_request, pull_request_target or issue_comment events")
}

// SplitRepository splits GITHUB_REPOSITORY ("owner/name").
func SplitRepository(s string) (owner, repo string, err error) {
	owner, repo, ok := strings.Cut(s, "/")
	if !ok || owner == "" || repo == "" || strings.Contains(repo, "/") {
		return "", "", fmt.Errorf("repository %q: want owner/name", s)
	}
	return owner, repo, nil
}
