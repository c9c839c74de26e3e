package tokenizer

import (
	"container/heap"
	"sync"
)

// merge is one BPE rule: the pair it applies to becomes id, and rules of lower rank go first.
type merge struct {
	rank int32
	id   int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// bpe applies merges to a word given as symbol ids, as HuggingFace's BPE model does: always the
// rule of lowest rank among the adjacent pairs, and among equal ranks the leftmost pair. (ollama's
// tokenizer breaks such ties by heap order, which splits runs like "========" differently.)
func bpe(merges map[uint64]merge, ids []int32) []int32 {
	if len(ids) < 2 {
		return ids
	}
	if len(ids) <= 6 {
		return bpeSmall(merges, ids)
	}
	// A doubly linked list of symbols and a heap of candidate merges keyed (rank, position).
	// Positions are original indices, so a smaller position is further left.
	n := len(ids)
	prev := make([]int, n)
	next := make([]int, n)
	for i := range ids {
		prev[i], next[i] = i-1, i+1
	}
	next[n-1] = -1
	h := make(candidates, 0, n)
	for i := 0; i+1 < n; i++ {
		if m, ok := merges[pairKey(ids[i], ids[i+1])]; ok {
			h = append(h, candidate{rank: m.rank, pos: i, left: ids[i], right: ids[i+1], id: m.id})
		}
	}
	heap.Init(&h)
	alive := make([]bool, n)
	for i := range alive {
		alive[i] = true
	}
	for h.Len() > 0 {
		c := heap.Pop(&h).(candidate)
		r := next[c.pos]
		// Skip candidates made stale by an earlier merge of either symbol.
		if !alive[c.pos] || r < 0 || ids[c.pos] != c.left || ids[r] != c.right {
			continue
		}
		ids[c.pos] = c.id
		alive[r] = false
		next[c.pos] = next[r]
		if next[r] >= 0 {
			prev[next[r]] = c.pos
		}
		if p := prev[c.pos]; p >= 0 {
			if m, ok := merges[pairKey(ids[p], c.id)]; ok {
				heap.Push(&h, candidate{rank: m.rank, pos: p, left: ids[p], right: c.id, id: m.id})
			}
		}
		if q := next[c.pos]; q >= 0 {
			if m, ok := merges[pairKey(c.id, ids[q])]; ok {
				heap.Push(&h, candidate{rank: m.rank, pos: c.pos, left: c.id, right: ids[q], id: m.id})
			}
		}
	}
	out := ids[:0]
	for i := 0; i >= 0; i = next[i] {
		out = append(out, ids[i])
	}
	return out
}

// bpeSmall is the same rule for short words, by rescanning: cheaper than a heap below ~8 symbols.
func bpeSmall(merges map[uint64]merge, ids []int32) []int32 {
	for len(ids) > 1 {
		best, at := merge{rank: -1}, -1
		for i := 0; i+1 < len(ids); i++ {
			if m, ok := merges[pairKey(ids[i], ids[i+1])]; ok && (at < 0 || m.rank < best.rank) {
				best, at = m, i
			}
		}
		if at < 0 {
			break
		}
		ids[at] = best.id
		ids = append(ids[:at+1], ids[at+2:]...)
	}
	return ids
}

type candidate struct {
	rank        int32
	pos         int
	left, right int32
	id          int32
}

type candidates []candidate

func (c candidates) Len() int { return len(c) }
func (c candidates) Less(i, j int) bool {
	if c[i].rank != c[j].rank {
		return c[i].rank < c[j].rank
	}
	return c[i].pos < c[j].pos
}
func (c candidates) Swap(i, j int) { c[i], c[j] = c[j], c[i] }
func (c *candidates) Push(x any)   { *c = append(*c, x.(candidate)) }
func (c *candidates) Pop() any {
	old := *c
	x := old[len(old)-1]
	*c = old[:len(old)-1]
	return x
}

// wordCache remembers the ids of words already encoded: text repeats the same words, and a map
// lookup is much cheaper than pre-tokenized BPE. It is bounded by clearing when full.
type wordCache struct {
	mu    sync.RWMutex
	words map[string][]int32
}

const (
	cacheWords   = 1 << 16
	cacheMaxWord = 64 // longer words (whitespace runs, long CJK runs) are rarely repeated
)

func (c *wordCache) get(w string) ([]int32, bool) {
	c.mu.RLock()
	ids, ok := c.words[w]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(w string, ids []int32) {
	if len(w) > cacheMaxWord {
		return
	}
	c.mu.Lock()
	if c.words == nil || len(c.words) >= cacheWords {
		c.words = make(map[string][]int32, 1024)
	}
	c.words[w] = ids
	c.mu.Unlock()
}
