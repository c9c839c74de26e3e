package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/toklip/toklip/llm"
)

// The commands that use a model (run, generate, list, show) talk to a running `toklip serve`
// when one answers at TOKLIP_HOST, as ollama's CLI talks to `ollama serve`: the server is then
// the one process that holds models, and a second terminal's `toklip run` shares the model the
// first one loaded. They speak ollama's API through ollama's own Go client. When no server
// answers, run and generate load the model in this process, and list and show read the store;
// each says which on stderr. ps and stop need a server.

// hostEnv names the server the commands talk to: [scheme://]host[:port], as OLLAMA_HOST does for
// ollama (default 127.0.0.1:8750).
const hostEnv = "TOKLIP_HOST"

// serverURL is TOKLIP_HOST as a URL.
func serverURL() (*url.URL, error) {
	v := strings.TrimSpace(os.Getenv(hostEnv))
	if v == "" {
		v = "127.0.0.1"
	}
	scheme := "http"
	if s, rest, ok := strings.Cut(v, "://"); ok {
		scheme, v = s, rest
	}
	if scheme != "http" && scheme != "https" {
		return nil, fmt.Errorf("%s=%q: the scheme must be http or https", hostEnv, os.Getenv(hostEnv))
	}
	host, path, _ := strings.Cut(v, "/")
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(DefaultPort))
	}
	u := &url.URL{Scheme: scheme, Host: host}
	if path != "" {
		u.Path = "/" + strings.TrimSuffix(path, "/")
	}
	return u, nil
}

// bearer adds TOKLIP_API_KEY to every request, for a server started with -api-key.
type bearer struct {
	key  string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.key != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.key)
	}
	return b.next.RoundTrip(r)
}

// remote is a running toklip server.
type remote struct {
	url *url.URL
	api *api.Client
}

// findServer returns the server at TOKLIP_HOST if one answers within a second, else nil (and the
// URL it tried, for messages).
func findServer() (*remote, *url.URL, error) {
	u, err := serverURL()
	if err != nil {
		return nil, nil, err
	}
	hc := &http.Client{Transport: bearer{key: os.Getenv("TOKLIP_API_KEY"), next: http.DefaultTransport}}
	c := api.NewClient(u, hc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.Heartbeat(ctx); err != nil {
		return nil, u, nil
	}
	return &remote{url: u, api: c}, u, nil
}

// serverOrLocal finds the server for a command that can work without one, and says on stderr
// which it uses.
func serverOrLocal(what string) (*remote, error) {
	r, u, err := findServer()
	if err != nil {
		return nil, err
	}
	if r != nil {
		fmt.Fprintf(os.Stderr, "toklip: using the server at %s\n", u)
	} else {
		fmt.Fprintf(os.Stderr, "toklip: no server answers at %s (%s): %s\n", u, hostEnv, what)
	}
	return r, nil
}

// needServer finds the server for a command that needs one.
func needServer(command string) (*remote, error) {
	r, u, err := findServer()
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("no toklip server answers at %s: `toklip %s` asks a running server (start one with `toklip serve`, or set %s)", u, command, hostEnv)
	}
	return r, nil
}

// apiErr turns the client's error into a sentence.
func apiErr(err error) error {
	if err == nil {
		return nil
	}
	var se api.StatusError
	if errors.As(err, &se) && se.ErrorMessage != "" {
		return fmt.Errorf("the server says: %s", se.ErrorMessage)
	}
	var ae api.AuthorizationError
	if errors.As(err, &ae) {
		return fmt.Errorf("the server refused the request (%d): set TOKLIP_API_KEY to its key", ae.StatusCode)
	}
	return err
}

// runPS lists the models a running server holds.
func runPS(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ps", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print ollama's ps answer as JSON")
	if _, err := parse(fs, args, 0); err != nil {
		return err
	}
	r, err := needServer("ps")
	if err != nil {
		return err
	}
	resp, err := r.api.ListRunning(context.Background())
	if err != nil {
		return apiErr(err)
	}
	if *asJSON {
		return printJSON(stdout, resp)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tCONTEXT\tUNTIL")
	for _, m := range resp.Models {
		until := "forever"
		if d := time.Until(m.ExpiresAt); d < 100*365*24*time.Hour {
			until = "in " + d.Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%.1f MB\t%d\t%s\n", strings.TrimSuffix(m.Name, ":latest"), float64(m.Size)/1e6, m.ContextLength, until)
	}
	return tw.Flush()
}

// runStop unloads models from a running server (each once the requests it is answering end), as
// `ollama stop` does: a request with keep_alive 0.
func runStop(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("stop", flag.ContinueOnError)
	pos, err := parse(fs, args, -1)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return fmt.Errorf("%w: name the model(s) to stop", errUsage)
	}
	r, err := needServer("stop")
	if err != nil {
		return err
	}
	for _, name := range pos {
		err := r.api.Generate(context.Background(), &api.GenerateRequest{Model: name, KeepAlive: &api.Duration{}}, func(api.GenerateResponse) error { return nil })
		if err != nil {
			return apiErr(err)
		}
		fmt.Fprintf(stdout, "stopped %s\n", name)
	}
	return nil
}

// chat sends a conversation and prints the answer as it streams; the images it draws are written
// into the working folder, as `run` in this process writes them. It returns the answer's text.
func (r *remote) chat(ctx context.Context, model string, msgs []llm.Message, options map[string]any, out io.Writer, graphics, name string) (string, error) {
	req := &api.ChatRequest{Model: model, Options: options}
	for _, m := range msgs {
		am := api.Message{Role: m.Role}
		for _, p := range m.Content {
			if p.Image != nil {
				am.Images = append(am.Images, p.Image)
			}
			am.Content += p.Text
		}
		req.Messages = append(req.Messages, am)
	}
	var text strings.Builder
	lineStart := true
	err := r.api.Chat(ctx, req, func(resp api.ChatResponse) error {
		fmt.Fprint(out, resp.Message.Content)
		text.WriteString(resp.Message.Content)
		if resp.Message.Content != "" {
			lineStart = strings.HasSuffix(resp.Message.Content, "\n")
		}
		for _, img := range resp.Message.Images {
			if !lineStart {
				fmt.Fprintln(out)
				lineStart = true
			}
			if path, err := writeNew(name, img); err != nil {
				fmt.Fprintf(out, "[image not written: %v]\n", err)
			} else {
				fmt.Fprintf(out, "[image: %s]\n", path)
			}
			if pic, err := png.Decode(bytes.NewReader(img)); err == nil {
				showImage(out, graphics, pic)
			}
		}
		return nil
	})
	if !lineStart {
		fmt.Fprintln(out)
	}
	return text.String(), apiErr(err)
}

// draw asks the server for one image (ollama's image generation through /api/generate), its
// PNG's bytes, printing the progress on stderr.
func (r *remote) draw(model, prompt string, options map[string]any) ([]byte, error) {
	var img string
	progress, drawn := isTerminal(os.Stderr), false // progress redrawn in place: only on a terminal
	err := r.api.Generate(context.Background(), &api.GenerateRequest{Model: model, Prompt: prompt, Width: 1, Height: 1, Options: options},
		func(g api.GenerateResponse) error {
			if g.Total > 0 && !g.Done && progress {
				fmt.Fprintf(os.Stderr, "\rdrawing %d of %d", g.Completed, g.Total)
				drawn = true
			}
			if g.Done {
				if drawn {
					fmt.Fprintln(os.Stderr)
				}
				img = g.Image
			}
			return nil
		})
	if err != nil {
		return nil, apiErr(err)
	}
	b, err := base64.StdEncoding.DecodeString(img)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("the server sent no image")
	}
	return b, nil
}
