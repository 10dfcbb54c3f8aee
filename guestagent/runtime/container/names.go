package container

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"regexp"
	"strings"
)

// validName is Docker's name rule, except that berth also accepts a
// one-character name ("w"), which dockerd refuses for no security reason.
var validName = regexp.MustCompile(`^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// normalizeName validates a user-given name and returns it with Docker's
// leading "/".
func normalizeName(name string) (string, error) {
	if !validName.MatchString(name) {
		return "", fmt.Errorf("%w: invalid container name %q, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", ErrInvalid, name)
	}
	return "/" + strings.TrimPrefix(name, "/"), nil
}

var idPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

func isID(s string) bool { return idPattern.MatchString(s) }

// newID returns a random 64-hex container ID whose short form is not all
// digits (so it never reads as a number).
func newID() string {
	for {
		var b [32]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		if strings.Trim(id[:12], "0123456789") != "" {
			return id
		}
	}
}

// Word lists for generated names (berth's own, nautical).
var (
	adjectives = []string{
		"amber", "brave", "bright", "calm", "clever", "cozy", "crisp", "daring", "eager", "fair",
		"fleet", "gentle", "golden", "hardy", "honest", "jolly", "keen", "kind", "lively", "loyal",
		"lucky", "merry", "mighty", "misty", "nimble", "noble", "plucky", "proud", "quiet", "quick",
		"rapid", "salty", "serene", "sharp", "silver", "snug", "steady", "stout", "sunny", "swift",
		"tidy", "trusty", "vivid", "wise", "witty", "zesty",
	}
	nouns = []string{
		"anchor", "beacon", "buoy", "cabin", "canal", "cape", "compass", "coral", "cove", "current",
		"deck", "dock", "dory", "ferry", "fjord", "galley", "gull", "harbor", "helm", "inlet",
		"island", "jetty", "keel", "kelp", "lagoon", "lantern", "mast", "mooring", "oar", "otter",
		"pelican", "pier", "puffin", "quay", "reef", "rudder", "sail", "schooner", "shoal", "skiff",
		"sloop", "tide", "voyage", "wake", "wharf", "yawl",
	}
)

func randIndex(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		return 0
	}
	return int(v.Int64())
}

// generateName returns "/adjective_noun", with a digit appended when retry > 0
// (as Docker does after collisions).
func generateName(retry int) string {
	name := adjectives[randIndex(len(adjectives))] + "_" + nouns[randIndex(len(nouns))]
	if retry > 0 {
		name += fmt.Sprint(randIndex(10))
	}
	return "/" + name
}
