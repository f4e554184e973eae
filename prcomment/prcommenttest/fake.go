// Package prcommenttest is a fake of the part of GitHub's REST API that
// prcomment uses, issue comments, for tests: it keeps comments in memory,
// paginates like GitHub, checks the token, records every request and can
// be told to fail.
package prcommenttest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
)

// A Comment is an issue comment as the fake stores it.
type Comment struct {
	ID      int64  `json:"id"`
	Body    string `json:"body"`
	HTMLURL string `json:"html_url"`
}

// A Request is one request the fake received.
type Request struct {
	Method string
	Path   string
	Query  string
	Body   string
}

// A Server is a fake GitHub API for one pull request.
type Server struct {
	*httptest.Server
	owner, repo string
	number      int
	token       string

	mu       sync.Mutex
	pageSize int
	comments []Comment
	requests []Request
	nextID   int64
	fail     map[string]failure // by method
}

type failure struct {
	status  int
	message string
}

// NewServer starts a fake API serving the comments of pull request
// owner/repo#number to clients that present token. Close it when done.
func NewServer(owner, repo string, number int, token string) *Server {
	s := &Server{owner: owner, repo: repo, number: number, token: token, pageSize: 30, nextID: 1000, fail: map[string]failure{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// SetPageSize sets how many comments a page holds at most, whatever the
// client asks for.
func (s *Server) SetPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageSize = n
}

// AddComment adds a comment, as somebody else would, and returns its id.
func (s *Server) AddComment(body string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.add(body).ID
}

func (s *Server) add(body string) Comment {
	s.nextID++
	c := Comment{ID: s.nextID, Body: body, HTMLURL: fmt.Sprintf("https://github.example/%s/%s/pull/%d#issuecomment-%d", s.owner, s.repo, s.number, s.nextID)}
	s.comments = append(s.comments, c)
	return c
}

// Fail makes every request with method answer status with message, the
// way GitHub reports errors; status 0 stops failing.
func (s *Server) Fail(method string, status int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		delete(s.fail, method)
		return
	}
	s.fail[method] = failure{status, message}
}

// Comments returns the pull request's comments, oldest first.
func (s *Server) Comments() []Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Comment(nil), s.comments...)
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count returns how many requests had method.
func (s *Server) Count(method string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == method {
			n++
		}
	}
	return n
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func errorBody(message string) map[string]string {
	return map[string]string{"message": message, "documentation_url": "https://docs.github.com/rest"}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: string(body)})

	if got := r.Header.Get("Authorization"); got != "Bearer "+s.token {
		writeJSON(w, http.StatusUnauthorized, errorBody("Bad credentials"))
		return
	}
	if f, ok := s.fail[r.Method]; ok {
		writeJSON(w, f.status, errorBody(f.message))
		return
	}
	list := fmt.Sprintf("/repos/%s/%s/issues/%d/comments", s.owner, s.repo, s.number)
	edit := fmt.Sprintf("/repos/%s/%s/issues/comments/", s.owner, s.repo)
	switch {
	case r.URL.Path == list && r.Method == http.MethodGet:
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		page = max(page, 1)
		size := s.pageSize
		if pp, err := strconv.Atoi(r.URL.Query().Get("per_page")); err == nil && pp > 0 && pp < size {
			size = pp
		}
		from := min((page-1)*size, len(s.comments))
		to := min(from+size, len(s.comments))
		if to < len(s.comments) {
			q := r.URL.Query()
			q.Set("page", strconv.Itoa(page+1))
			w.Header().Set("Link", fmt.Sprintf(`<%s%s?%s>; rel="next"`, s.URL, list, q.Encode()))
		}
		writeJSON(w, http.StatusOK, s.comments[from:to])
	case r.URL.Path == list && r.Method == http.MethodPost:
		var in struct {
			Body *string `json:"body"`
		}
		if json.Unmarshal(body, &in) != nil || in.Body == nil {
			writeJSON(w, http.StatusUnprocessableEntity, errorBody("Invalid request: body is required"))
			return
		}
		if len([]rune(*in.Body)) > 65536 {
			writeJSON(w, http.StatusUnprocessableEntity, errorBody("Validation Failed: body is too long (maximum is 65536 characters)"))
			return
		}
		writeJSON(w, http.StatusCreated, s.add(*in.Body))
	case strings.HasPrefix(r.URL.Path, edit) && r.Method == http.MethodPatch:
		id, err := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, edit), 10, 64)
		var in struct {
			Body *string `json:"body"`
		}
		if err != nil || json.Unmarshal(body, &in) != nil || in.Body == nil {
			writeJSON(w, http.StatusUnprocessableEntity, errorBody("Invalid request"))
			return
		}
		if len([]rune(*in.Body)) > 65536 {
			writeJSON(w, http.StatusUnprocessableEntity, errorBody("Validation Failed: body is too long (maximum is 65536 characters)"))
			return
		}
		for i := range s.comments {
			if s.comments[i].ID == id {
				s.comments[i].Body = *in.Body
				writeJSON(w, http.StatusOK, s.comments[i])
				return
			}
		}
		writeJSON(w, http.StatusNotFound, errorBody("Not Found"))
	default:
		writeJSON(w, http.StatusNotFound, errorBody("Not Found"))
	}
}
