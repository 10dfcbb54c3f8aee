package jsonlog

import "time"

// pollInterval is how often a follower looks for appends when it has no
// change notifications.
const pollInterval = 100 * time.Millisecond

// notifier signals changes to a followed file: events receives a value
// (coalesced) after appends; safetyPoll is how often to look anyway.
type notifier struct {
	events     <-chan struct{}
	safetyPoll time.Duration
	close      func()
}
