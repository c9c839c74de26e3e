package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/ollama/ollama/api"

	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/modelfiles"
	"github.com/toklip/toklip/server"
)

func openStore() (*modelfiles.Store, error) { return modelfiles.DefaultStore() }

// runCreate stores a model from a Modelfile, with a progress bar while the files are hashed and
// copied.
func runCreate(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("create", flag.ContinueOnError)
	file := fs.String("f", "Modelfile", "the Modelfile")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	f, err := os.Open(*file)
	if err != nil {
		return err
	}
	defer f.Close()
	mf, err := modelfiles.Parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	st, err := openStore()
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(filepath.Dir(*file))
	if err != nil {
		return err
	}
	if err := st.Create(pos[0], mf, dir, terminalProgress("copying")); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s\n", pos[0])
	return nil
}

// terminalProgress is a progress bar on stderr when stderr is a terminal, else nil: a bar
// redrawn with carriage returns is noise in a log file or a pipe.
func terminalProgress(verb string) func(done, total int64) {
	if !isTerminal(os.Stderr) {
		return nil
	}
	return progressBar(os.Stderr, verb)
}

// progressBar draws "copying [=====     ] 45% 12.3 of 27.1 MB" on one line of w, redrawn at
// each whole percent, ended with a newline at 100%.
func progressBar(w io.Writer, verb string) func(done, total int64) {
	last := -1
	return func(done, total int64) {
		pct := int(100 * done / max(total, 1))
		if pct == last {
			return
		}
		last = pct
		fill := pct / 5
		fmt.Fprintf(w, "\r%s [%s%s] %3d%% %.1f of %.1f MB", verb, strings.Repeat("=", fill), strings.Repeat(" ", 20-fill), pct,
			float64(done)/1e6, float64(total)/1e6)
		if pct == 100 {
			fmt.Fprintln(w)
		}
	}
}

func runList(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print ollama's list answer as JSON")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	var list api.ListResponse
	if r, err := serverOrLocal("reading the store"); err != nil {
		return err
	} else if r != nil {
		resp, err := r.api.List(context.Background())
		if err != nil {
			return apiErr(err)
		}
		list = *resp
	} else if list, err = localList(); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tCREATED")
	for _, m := range list.Models {
		created := "embedded"
		if !m.ModifiedAt.IsZero() {
			created = m.ModifiedAt.Local().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%.1f MB\t%s\n", strings.TrimSuffix(m.Name, ":latest"), float64(m.Size)/1e6, created)
	}
	return tw.Flush()
}

// localList is the store's models as ollama's list answer (the demo model first).
func localList() (api.ListResponse, error) {
	list := api.ListResponse{Models: []api.ListModelResponse{}}
	st, err := openStore()
	if err != nil {
		return list, err
	}
	ms, err := st.List()
	if err != nil {
		return list, err
	}
	for _, m := range ms {
		list.Models = append(list.Models, api.ListModelResponse{Name: m.Name, Model: m.Name, ModifiedAt: m.Created, Size: m.Size,
			Digest: strings.TrimPrefix(m.LM, "sha256:"), Details: api.ModelDetails{Format: "gguf"}})
	}
	return list, nil
}

func runShow(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("show", flag.ContinueOnError)
	onlyModelfile := fs.Bool("modelfile", false, "print only the Modelfile (create makes the same model from it)")
	asJSON := fs.Bool("json", false, "print ollama's show answer as JSON")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	var resp api.ShowResponse
	if r, err := serverOrLocal("reading the store"); err != nil {
		return err
	} else if r != nil {
		got, err := r.api.Show(context.Background(), &api.ShowRequest{Model: pos[0]})
		if err != nil {
			return apiErr(err)
		}
		resp = *got
	} else if resp, err = localShow(pos[0]); err != nil {
		return err
	}
	switch {
	case *asJSON:
		return printJSON(stdout, resp)
	case *onlyModelfile:
		fmt.Fprint(stdout, resp.Modelfile)
		return nil
	}
	printShow(stdout, resp)
	return nil
}

// localShow is ollama's show answer for a model of this machine's store (or the demo model).
func localShow(name string) (api.ShowResponse, error) {
	var mf *modelfiles.Modelfile
	var files modelfiles.Files
	var err error
	if name == modelfiles.DemoName {
		if mf, err = modelfiles.DemoModelfile(); err != nil {
			return api.ShowResponse{}, err
		}
		if files, err = modelfiles.Demo(); err != nil {
			return api.ShowResponse{}, err
		}
	} else {
		st, err := openStore()
		if err != nil {
			return api.ShowResponse{}, err
		}
		m, f, err := st.Get(name)
		if err != nil {
			return api.ShowResponse{}, err
		}
		if mf, err = m.Parsed(); err != nil {
			return api.ShowResponse{}, err
		}
		files = f
	}
	return server.Show(name, files, mf)
}

// printShow prints a model in ollama's sections: the model, its TokLIP file, what it can do,
// its parameters, system message and license.
func printShow(w io.Writer, r api.ShowResponse) {
	row := func(k string, v any) { fmt.Fprintf(w, "    %-20s %v\n", k, v) }
	arch, _ := r.ModelInfo["general.architecture"].(string)
	fmt.Fprintln(w, "  Model")
	if e, ok := r.ModelInfo["toklip.error"]; ok {
		row("files", fmt.Sprintf("not a model toklip runs: %v", e))
	}
	row("architecture", arch)
	if r.Details.ParameterSize != "" {
		row("parameters", r.Details.ParameterSize)
	}
	if v, ok := r.ModelInfo[arch+".context_length"]; ok {
		row("context length", v)
	}
	if v, ok := r.ModelInfo["toklip.context_length"]; ok {
		row("context loaded", v)
	}
	if v, ok := r.ModelInfo[arch+".embedding_length"]; ok {
		row("embedding length", v)
	}
	if r.Details.QuantizationLevel != "" {
		row("quantization", r.Details.QuantizationLevel)
	}
	if p := r.ProjectorInfo; p != nil {
		fmt.Fprintln(w, "\n  Projector (TokLIP: reads and draws images)")
		if n, ok := p["general.parameter_count"].(float64); ok { // from JSON
			row("parameters", llm.ParameterSize(uint64(n)))
		} else if n, ok := p["general.parameter_count"].(uint64); ok {
			row("parameters", llm.ParameterSize(n))
		}
		row("image size", fmt.Sprintf("%v px", p["toklip.image_size"]))
		row("image ids", fmt.Sprintf("%v x %v of %v", p["toklip.vq_grid"], p["toklip.vq_grid"], p["toklip.codebook_size"]))
		row("embedding length", p["toklip.embedding_length"])
		row("quantization", p["general.quantization"])
	}
	fmt.Fprintln(w, "\n  Capabilities")
	for _, c := range r.Capabilities {
		fmt.Fprintf(w, "    %s\n", c)
	}
	if r.Parameters != "" {
		fmt.Fprintln(w, "\n  Parameters")
		for line := range strings.Lines(strings.TrimSpace(r.Parameters)) {
			fmt.Fprintf(w, "    %s\n", strings.TrimSpace(line))
		}
	}
	for _, sec := range []struct{ title, text string }{{"System", r.System}, {"License", r.License}} {
		if strings.TrimSpace(sec.text) == "" {
			continue
		}
		fmt.Fprintf(w, "\n  %s\n", sec.title)
		for line := range strings.Lines(strings.TrimSpace(sec.text)) {
			fmt.Fprintf(w, "    %s\n", strings.TrimRight(line, "\n"))
		}
	}
	fmt.Fprintln(w)
}

// printJSON prints v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runRm(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rm", flag.ContinueOnError)
	pos, err := parse(fs, args, -1)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("%w: name the model(s) to remove", errUsage)
	}
	st, err := openStore()
	if err != nil {
		return err
	}
	for _, name := range pos {
		if err := st.Remove(name); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s\n", name)
	}
	return nil
}

func runCp(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("cp", flag.ContinueOnError)
	pos, err := parse(fs, args, 2)
	if err != nil {
		return err
	}
	st, err := openStore()
	if err != nil {
		return err
	}
	if err := st.Copy(pos[0], pos[1]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "copied %s to %s\n", pos[0], pos[1])
	return nil
}

// storedModel finds a stored model's files and Modelfile by name.
func storedModel(name string) (modelfiles.Files, *modelfiles.Modelfile, error) {
	st, err := openStore()
	if err != nil {
		return modelfiles.Files{}, nil, err
	}
	m, f, err := st.Get(name)
	if errors.Is(err, modelfiles.ErrNotFound) {
		return f, nil, fmt.Errorf("unknown model %q: `toklip list` shows the models there are", name)
	}
	if err != nil {
		return f, nil, err
	}
	mf, err := m.Parsed()
	return f, mf, err
}
