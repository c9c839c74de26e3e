package evaluate

import (
	"bufio"
	"encoding/json"
	"fmt"
	"image"
	"os"
	"path/filepath"

	"github.com/toklip/toklip/demo"
)

// The outputs of an evaluation, as files: per set, NAME.answers.jsonl ({"answer": text} per
// scene) for understanding and NAME.generated.u8 (64 x 64 RGB per caption) for generation. The
// PyTorch evaluation (tools/demo/evaluate.py) writes them; so does `toklip eval-demo -outputs`.

// Outputs are one set's outputs, in order.
type Outputs struct {
	Answers []string
	Images  [][]byte // 64 x 64 x 3 RGB each
}

// ReadOutputs reads the first set.N outputs of set from dir.
func ReadOutputs(dir string, set demo.EvalSet) (Outputs, error) {
	switch set.Task {
	case "understanding":
		a, err := readAnswers(filepath.Join(dir, set.Name()+".answers.jsonl"), set.N)
		return Outputs{Answers: a}, err
	case "generation":
		path := filepath.Join(dir, set.Name()+".generated.u8")
		raw, err := os.ReadFile(path)
		if err != nil {
			return Outputs{}, err
		}
		size := demo.Size * demo.Size * 3
		if len(raw)%size != 0 || len(raw)/size < set.N {
			return Outputs{}, fmt.Errorf("%s: %d bytes, want at least %d images of %d", path, len(raw), set.N, size)
		}
		var o Outputs
		for i := range set.N {
			o.Images = append(o.Images, raw[i*size:(i+1)*size])
		}
		return o, nil
	}
	return Outputs{}, fmt.Errorf("unknown task %q", set.Task)
}

// readAnswers reads the first n answers of a NAME.answers.jsonl file.
func readAnswers(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for len(out) < n && sc.Scan() {
		var line struct{ Answer string }
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, len(out)+1, err)
		}
		out = append(out, line.Answer)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) != n {
		return nil, fmt.Errorf("%s: %d answers, want %d", path, len(out), n)
	}
	return out, nil
}

// Differs says how r differs from the same item of o: another answer, or a drawing more than
// 2/255 away on some channel of some pixel (both sides decode in F32, summing in other orders).
// It returns "" when they agree.
func (r Result) Differs(o Outputs) string {
	switch {
	case r.Image != nil:
		if d := maxDiff(r.Image, o.Images[r.Index]); d > 2 {
			return fmt.Sprintf("pixels differ by up to %d/255", d)
		}
	case r.Answer != o.Answers[r.Index]:
		return fmt.Sprintf("answer %q, the other %q", r.Answer, o.Answers[r.Index])
	}
	return ""
}

func maxDiff(img image.Image, rgb []byte) int {
	worst := 0
	for y := range demo.Size {
		for x := range demo.Size {
			r, g, b, _ := img.At(x, y).RGBA()
			i := 3 * (y*demo.Size + x)
			for c, v := range []uint32{r >> 8, g >> 8, b >> 8} {
				worst = max(worst, abs(int(v)-int(rgb[i+c])))
			}
		}
	}
	return worst
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// Writer writes results as outputs files into a folder, as the PyTorch evaluation does.
type Writer struct {
	dir   string
	files map[string]*os.File
}

// NewWriter writes into dir, which it makes.
func NewWriter(dir string) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &Writer{dir: dir, files: map[string]*os.File{}}, nil
}

// Write appends one result to its set's file.
func (w *Writer) Write(r Result) error {
	ext := ".answers.jsonl"
	if r.Image != nil {
		ext = ".generated.u8"
	}
	f := w.files[r.Set.Name()]
	if f == nil {
		var err error
		if f, err = os.Create(filepath.Join(w.dir, r.Set.Name()+ext)); err != nil {
			return err
		}
		w.files[r.Set.Name()] = f
	}
	if r.Image == nil {
		line, err := json.Marshal(map[string]string{"answer": r.Answer})
		if err != nil {
			return err
		}
		_, err = f.Write(append(line, '\n'))
		return err
	}
	rgb := make([]byte, 0, demo.Size*demo.Size*3)
	for y := range demo.Size {
		for x := range demo.Size {
			cr, cg, cb, _ := r.Image.At(x, y).RGBA()
			rgb = append(rgb, byte(cr>>8), byte(cg>>8), byte(cb>>8))
		}
	}
	_, err := f.Write(rgb)
	return err
}

// Close closes every file, returning the first error.
func (w *Writer) Close() error {
	var first error
	for _, f := range w.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
