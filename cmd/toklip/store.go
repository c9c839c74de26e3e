package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/toklip/toklip/modelfiles"
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
	bar := progressBar(os.Stderr)
	if err := st.Create(pos[0], mf, dir, bar); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s\n", pos[0])
	return nil
}

// progressBar draws "copying [=====     ] 45% 12.3 of 27.1 MB" on one line of w, redrawn at
// each whole percent, ended with a newline at 100%.
func progressBar(w io.Writer) func(done, total int64) {
	last := -1
	return func(done, total int64) {
		pct := int(100 * done / max(total, 1))
		if pct == last {
			return
		}
		last = pct
		fill := pct / 5
		fmt.Fprintf(w, "\rcopying [%s%s] %3d%% %.1f of %.1f MB", strings.Repeat("=", fill), strings.Repeat(" ", 20-fill), pct,
			float64(done)/1e6, float64(total)/1e6)
		if pct == 100 {
			fmt.Fprintln(w)
		}
	}
}

func runList(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("list", flag.ContinueOnError)
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	if r, err := serverOrLocal("reading the store"); err != nil || r != nil {
		if err != nil {
			return err
		}
		return r.list(stdout)
	}
	st, err := openStore()
	if err != nil {
		return err
	}
	ms, err := st.List()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tCREATED")
	for _, m := range ms {
		created := "embedded"
		if !m.Created.IsZero() {
			created = m.Created.Local().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%.1f MB\t%s\n", m.Name, float64(m.Size)/1e6, created)
	}
	return tw.Flush()
}

func runShow(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("show", flag.ContinueOnError)
	onlyModelfile := fs.Bool("modelfile", false, "print only the Modelfile")
	pos, err := parse(fs, args, 1)
	if err != nil {
		return err
	}
	if r, err := serverOrLocal("reading the store"); err != nil || r != nil {
		if err != nil {
			return err
		}
		return r.show(pos[0], *onlyModelfile, stdout)
	}
	var text string
	var files modelfiles.Files
	if pos[0] == modelfiles.DemoName {
		mf, err := modelfiles.DemoModelfile()
		if err != nil {
			return err
		}
		if files, err = modelfiles.Demo(); err != nil {
			return err
		}
		text = mf.String()
	} else {
		st, err := openStore()
		if err != nil {
			return err
		}
		m, f, err := st.Get(pos[0])
		if err != nil {
			return err
		}
		text, files = m.Modelfile, f
	}
	if *onlyModelfile {
		fmt.Fprint(stdout, text)
		return nil
	}
	fmt.Fprintf(stdout, "model   %s\nllm     %s\nvision  %s\n\n%s", pos[0], files.LM, files.Vision, text)
	return nil
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
