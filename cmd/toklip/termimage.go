package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"strings"

	"golang.org/x/image/draw"
)

// Drawn images are shown in the terminal where it can show pictures: kitty's graphics protocol
// (kitty, Ghostty, WezTerm, Konsole) or iTerm2's inline images (iTerm2, WezTerm, VS Code's
// terminal). TOKLIP_IMAGES=kitty, iterm2 or none says which, for a terminal not recognized (or
// to turn it off); the default guesses from the environment the terminal sets.

// graphicsProtocol is the protocol of the terminal on f, or "" when it shows no images (or f
// is not a terminal).
func graphicsProtocol(f *os.File) string {
	switch v := os.Getenv("TOKLIP_IMAGES"); v {
	case "kitty", "iterm2":
		return v
	case "none":
		return ""
	}
	if !isTerminal(f) {
		return ""
	}
	term, prog := os.Getenv("TERM"), os.Getenv("TERM_PROGRAM")
	switch {
	case term == "xterm-kitty", term == "xterm-ghostty", os.Getenv("KITTY_WINDOW_ID") != "", prog == "WezTerm":
		return "kitty"
	case prog == "iTerm.app", os.Getenv("LC_TERMINAL") == "iTerm2", prog == "vscode":
		return "iterm2"
	}
	return ""
}

// displaySize is the side, in pixels, drawn images are shown at: the model's images are small
// (the demo model's 64 px), so they are scaled up, by a whole factor, without smoothing.
const displaySize = 256

// showImage writes img to w in the terminal's protocol (nothing for "").
func showImage(w io.Writer, protocol string, img image.Image) error {
	if protocol == "" {
		return nil
	}
	b := img.Bounds()
	scale := max(1, displaySize/max(b.Dx(), b.Dy()))
	big := image.NewRGBA(image.Rect(0, 0, b.Dx()*scale, b.Dy()*scale))
	draw.NearestNeighbor.Scale(big, big.Bounds(), img, b, draw.Src, nil)
	var buf bytes.Buffer
	if err := png.Encode(&buf, big); err != nil {
		return err
	}
	data := base64.StdEncoding.EncodeToString(buf.Bytes())
	var out strings.Builder
	switch protocol {
	case "kitty":
		// a=T: transmit and show; f=100: PNG; the data in chunks of at most 4096 bytes, m=1 on
		// every chunk but the last.
		for i := 0; i < len(data); i += 4096 {
			chunk := data[i:min(i+4096, len(data))]
			more := 0
			if i+4096 < len(data) {
				more = 1
			}
			if i == 0 {
				fmt.Fprintf(&out, "\x1b_Ga=T,f=100,m=%d;%s\x1b\\", more, chunk)
			} else {
				fmt.Fprintf(&out, "\x1b_Gm=%d;%s\x1b\\", more, chunk)
			}
		}
	case "iterm2":
		fmt.Fprintf(&out, "\x1b]1337;File=inline=1;size=%d;width=%dpx;height=%dpx;preserveAspectRatio=1:%s\a", buf.Len(), big.Bounds().Dx(), big.Bounds().Dy(), data)
	}
	out.WriteString("\n")
	_, err := io.WriteString(w, out.String())
	return err
}
