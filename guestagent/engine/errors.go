package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/berth-dev/berth/guestagent/image"
	"github.com/berth-dev/berth/guestagent/network"
	"github.com/berth-dev/berth/guestagent/runtime/container"
)

// Error classes that survive the wire. Backends signal them either by
// wrapping one of these sentinels or by implementing the matching method of
// moby's errdefs interfaces (NotFound(), Conflict(), InvalidParameter(),
// Unavailable(), Forbidden(), NotModified()).
var (
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")
	ErrInvalid     = errors.New("invalid parameter")
	ErrUnavailable = errors.New("unavailable")
	ErrForbidden   = errors.New("forbidden")
	// ErrNotModified answers 304: starting a started container, stopping a stopped one.
	ErrNotModified = errors.New("not modified")
)

// classified carries a message as it is, in the class of its sentinel, so a
// client sees dockerd's wording without a prefix.
type classified struct {
	msg   string
	class error
}

func (e *classified) Error() string { return e.msg }
func (e *classified) Unwrap() error { return e.class }

func invalidf(format string, args ...any) error {
	return &classified{msg: fmt.Sprintf(format, args...), class: ErrInvalid}
}

func notFoundf(format string, args ...any) error {
	return &classified{msg: fmt.Sprintf(format, args...), class: ErrNotFound}
}

func conflictf(format string, args ...any) error {
	return &classified{msg: fmt.Sprintf(format, args...), class: ErrConflict}
}

// classes maps backend sentinels onto the engine's classes; New fills it
// from the backends it is given.
type classes struct {
	notFound, conflict, invalid, unavailable, forbidden []error
}

var defaultClasses = &classes{
	notFound:    []error{ErrNotFound},
	conflict:    []error{ErrConflict},
	invalid:     []error{ErrInvalid},
	unavailable: []error{ErrUnavailable},
	forbidden:   []error{ErrForbidden},
}

func isAny(err error, targets []error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// hasMethod reports whether err, or an error it wraps, implements the marker
// method that m detects.
func hasMethod(err error, m func(error) bool) bool {
	for _, e := range unwrapAll(err) {
		if m(e) {
			return true
		}
	}
	return false
}

func unwrapAll(err error) []error {
	var out []error
	queue := []error{err}
	for len(queue) > 0 {
		e := queue[0]
		queue = queue[1:]
		if e == nil {
			continue
		}
		out = append(out, e)
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			queue = append(queue, u.Unwrap())
		case interface{ Unwrap() []error }:
			queue = append(queue, u.Unwrap()...)
		}
	}
	return out
}

// statusOf returns the HTTP status dockerd answers for err.
func (c *classes) statusOf(err error) int {
	switch {
	case errors.Is(err, ErrNotModified) || errors.Is(err, container.ErrNotModified):
		return http.StatusNotModified
	case isAny(err, c.notFound) || hasMethod(err, func(e error) bool { _, ok := e.(interface{ NotFound() }); return ok }):
		return http.StatusNotFound
	case isAny(err, c.conflict) || hasMethod(err, func(e error) bool { _, ok := e.(interface{ Conflict() }); return ok }):
		return http.StatusConflict
	case isAny(err, c.invalid) || hasMethod(err, func(e error) bool { _, ok := e.(interface{ InvalidParameter() }); return ok }):
		return http.StatusBadRequest
	case isAny(err, c.forbidden) || hasMethod(err, func(e error) bool { _, ok := e.(interface{ Forbidden() }); return ok }):
		return http.StatusForbidden
	case isAny(err, c.unavailable) || hasMethod(err, func(e error) bool { _, ok := e.(interface{ Unavailable() }); return ok }):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// errorResponse is dockerd's error body.
type errorResponse struct {
	Message string `json:"message"`
}

// backendClasses extends the default classes with the sentinels of berth's
// backends, so their errors reach clients with dockerd's status codes.
func backendClasses() *classes {
	c := *defaultClasses
	c.notFound = append(c.notFound[:len(c.notFound):len(c.notFound)], image.ErrNotFound, container.ErrNotFound, network.ErrNotFound)
	c.conflict = append(c.conflict[:len(c.conflict):len(c.conflict)], image.ErrInUse, image.ErrConflict, container.ErrConflict, container.ErrNotRunning, network.ErrExists, network.ErrInUse)
	c.invalid = append(c.invalid[:len(c.invalid):len(c.invalid)], image.ErrInvalid, image.ErrAmbiguous, container.ErrInvalid, network.ErrInvalid, network.ErrOverlap)
	c.unavailable = append(c.unavailable[:len(c.unavailable):len(c.unavailable)], container.ErrNotSupported, network.ErrUnsupported, network.ErrClosed)
	c.forbidden = append(c.forbidden[:len(c.forbidden):len(c.forbidden)], network.ErrPredefined)
	return &c
}

// writeError answers err with the default classes.
func writeError(w http.ResponseWriter, err error) {
	defaultClasses.writeError(w, err)
}

func (c *classes) writeError(w http.ResponseWriter, err error) {
	status := c.statusOf(err)
	if status == http.StatusNotModified {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorResponse{Message: err.Error()})
}
