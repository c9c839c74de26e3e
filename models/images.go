package models

import "github.com/toklip/toklip/gguf"

// ImageTokens describes the image tokens a vocabulary-extended model adds: Count ids from First
// (one per VQ codebook entry), and the ids that open and close an image of Grid x Grid tokens.
// The zero value means a text-only model.
type ImageTokens struct {
	First int32
	Count int
	Begin int32
	End   int32
	Grid  int
}

// Enabled reports whether the model has an image-token vocabulary.
func (t ImageTokens) Enabled() bool { return t.Count > 0 }

// Contains reports whether id is one of the image tokens.
func (t ImageTokens) Contains(id int32) bool {
	return t.Count > 0 && id >= t.First && int(id-t.First) < t.Count
}

// PerImage is the number of image-token ids in one image.
func (t ImageTokens) PerImage() int { return t.Grid * t.Grid }

// The keys of the image-token extension, after the architecture prefix. A backbone has all of
// them or none.
const (
	keyImageFirst = "image.first_token_id"
	keyImageCount = "image.token_count"
	keyImageBegin = "image.begin_token_id"
	keyImageEnd   = "image.end_token_id"
	keyImageGrid  = "image.grid_size"
)

func readImageTokens(f *gguf.File, k func(string) string, vocab int) (ImageTokens, error) {
	var t ImageTokens
	if _, ok := f.KV[k(keyImageCount)]; !ok {
		for _, name := range []string{keyImageFirst, keyImageBegin, keyImageEnd, keyImageGrid} {
			if _, ok := f.KV[k(name)]; ok {
				return t, BadKey(f, k(keyImageCount), "missing, while %s is set: the image-token keys come all together", k(name))
			}
		}
		return t, nil
	}
	vals := map[string]uint32{}
	for _, name := range []string{keyImageFirst, keyImageCount, keyImageBegin, keyImageEnd, keyImageGrid} {
		v, err := gguf.Key[uint32](f, k(name))
		if err != nil {
			return t, err
		}
		vals[name] = v
	}
	t = ImageTokens{First: int32(vals[keyImageFirst]), Count: int(vals[keyImageCount]),
		Begin: int32(vals[keyImageBegin]), End: int32(vals[keyImageEnd]), Grid: int(vals[keyImageGrid])}
	switch {
	case t.Count == 0 || int(t.First)+t.Count > vocab:
		return t, BadKey(f, k(keyImageCount), "ids %d..%d do not fit the vocabulary of %d", t.First, int(t.First)+t.Count-1, vocab)
	case int(t.Begin) >= vocab || int(t.End) >= vocab || t.Begin == t.End || t.Contains(t.Begin) || t.Contains(t.End):
		return t, BadKey(f, k(keyImageBegin), "begin %d and end %d must be distinct ids in the vocabulary, outside the image ids", t.Begin, t.End)
	case t.Grid == 0:
		return t, BadKey(f, k(keyImageGrid), "must be positive")
	}
	return t, nil
}
