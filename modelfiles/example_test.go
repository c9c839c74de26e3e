package modelfiles_test

import (
	"fmt"
	"log"
	"strings"

	"github.com/toklip/toklip/modelfiles"
)

// A Modelfile's PARAMETERs become request options; what it leaves out stays nil, for the
// request's own value or the server's default. Seeds are exact to 2^63-1.
func ExampleModelfile_Options() {
	mf, err := modelfiles.Parse(strings.NewReader(`FROM lm.gguf
VISION vision.gguf
PARAMETER temperature 0.7
PARAMETER seed 9223372036854775807
PARAMETER stop "<|im_end|>"
PARAMETER stop "\n\n"
PARAMETER num_predict -1
PARAMETER guidance_scale 4
PARAMETER num_gpu 20
`))
	if err != nil {
		log.Fatal(err)
	}
	o := mf.Options()
	fmt.Println("temperature", *o.Temperature, "seed", *o.Seed, "guidance", *o.Guidance)
	fmt.Printf("stop %q\n", o.Stop)
	fmt.Println("num_predict -1 is no limit:", o.NumPredict == nil, "; top_k unset:", o.TopK == nil)
	fmt.Println("layers on the GPU:", *o.NumGPU)
	// Output:
	// temperature 0.7 seed 9223372036854775807 guidance 4
	// stop ["<|im_end|>" "\n\n"]
	// num_predict -1 is no limit: true ; top_k unset: true
	// layers on the GPU: 20
}
