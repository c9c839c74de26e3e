package llm

import (
	"strings"
	"testing"

	"github.com/toklip/toklip/visiontok"
)

// Streamed text never shows a stop string, nor a prefix of one that is later completed; text that
// only looked like a prefix comes out when the next piece shows it is not.
func TestStopper(t *testing.T) {
	var out strings.Builder
	s := newStopper([]string{"</s>", "STOP"}, func(t string) { out.WriteString(t) })
	pieces := []string{"Hello <", "/", "x> wor", "ld ST", "O", "P and more"}
	stopped := -1
	for i, p := range pieces {
		if s.add(p) {
			stopped = i
			break
		}
		if strings.Contains(out.String(), "ST") && !strings.Contains(out.String(), "STOP") && i == 3 {
			t.Fatalf("a possible stop prefix was streamed early: %q", out.String())
		}
	}
	if stopped != 5 || out.String() != "Hello </x> world " || s.flush() != "Hello </x> world " {
		t.Fatalf("stopped at piece %d, streamed %q", stopped, out.String())
	}
	s = newStopper(nil, nil)
	s.add("no stops ")
	s.add("at all")
	if got := s.flush(); got != "no stops at all" {
		t.Fatalf("without stop strings: %q", got)
	}
}

func TestFeatureCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := newFeatureCache(2)
	k := func(b byte) [32]byte { return [32]byte{b} }
	a, b, d := &visiontok.Encoded{}, &visiontok.Encoded{}, &visiontok.Encoded{}
	c.put(k(1), a)
	c.put(k(2), b)
	if got, _ := c.get(k(1)); got != a { // 1 is now the most recent
		t.Fatal("entry 1 missing")
	}
	c.put(k(3), d) // evicts 2
	if _, ok := c.get(k(2)); ok {
		t.Fatal("the least recently used entry was kept")
	}
	if got, ok := c.get(k(1)); !ok || got != a {
		t.Fatal("a recently used entry was evicted")
	}
	if got, ok := c.get(k(3)); !ok || got != d {
		t.Fatal("the newest entry is missing")
	}
}
