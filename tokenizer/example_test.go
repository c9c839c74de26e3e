package tokenizer_test

import (
	"fmt"
	"log"
	"path/filepath"

	"github.com/toklip/toklip/tokenizer"
)

// A tokenizer.json (here the test TokLIP's text tower's) encodes as HuggingFace's tokenizers
// does (the oracle tests check that on real tokenizers) and decodes back.
func Example() {
	tok, err := tokenizer.FromJSON(filepath.Join("..", "visiontok", "testdata", "tokenizer", "tokenizer.json"))
	if err != nil {
		log.Fatal(err)
	}
	ids := tok.Encode("a red circle", tokenizer.EncodeOptions{})
	fmt.Println(ids, tok.Decode(ids, false))
	// Output: [260 378 349] a red circle
}
