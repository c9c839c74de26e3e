package server

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestFetch(t *testing.T) {
	var pic bytes.Buffer
	png.Encode(&pic, image.NewRGBA(image.Rect(0, 0, 8, 8)))
	mux := http.NewServeMux()
	mux.HandleFunc("/cat.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Write(pic.Bytes())
	})
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>"))
	})
	mux.HandleFunc("/big.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Write(make([]byte, 4096))
	})
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://elsewhere.example/cat.png", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	f := newFetcher([]string{"127.0.0.1"}, 5*time.Second, 1000)
	ctx := context.Background()
	// The test server is on loopback: refused as an internal address, as it must be.
	if _, err := f.fetch(ctx, srv.URL+"/cat.png"); err == nil || !strings.Contains(err.Error(), "internal address") {
		t.Fatalf("a loopback fetch: %v", err)
	}
	f.allowInternal = true
	if b, err := f.fetch(ctx, srv.URL+"/cat.png"); err != nil || !bytes.Equal(b, pic.Bytes()) {
		t.Fatalf("fetch: %d bytes, %v", len(b), err)
	}
	for path, want := range map[string]string{
		"/page":    "not an image",
		"/big.png": "over the limit",
		"/away":    `"elsewhere.example" is not on this server's list`,
		"/nothing": "404",
	} {
		if _, err := f.fetch(ctx, srv.URL+path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", path, err, want)
		}
	}
	if _, err := f.fetch(ctx, "http://example.org/cat.png"); err == nil || !strings.Contains(err.Error(), "not on this server's list") {
		t.Errorf("a host not allowed: %v", err)
	}
	wild := newFetcher([]string{"*.example.com"}, time.Second, 1000)
	for host, ok := range map[string]bool{"img.example.com": true, "a.b.example.com": true, "example.com": false, "badexample.com": false} {
		if err := wild.allowed(&url.URL{Scheme: "https", Host: host}); (err == nil) != ok {
			t.Errorf("%s under *.example.com: %v", host, err)
		}
	}
	for addr, want := range map[string]bool{"127.0.0.1": true, "10.1.2.3": true, "192.168.0.1": true, "169.254.169.254": true,
		"100.64.0.1": true, "0.0.0.0": true, "::1": true, "fe80::1": true, "fc00::1": true, "::ffff:127.0.0.1": true,
		"8.8.8.8": false, "2001:4860:4860::8888": false} {
		if got := internal(netip.MustParseAddr(addr)); got != want {
			t.Errorf("internal(%s) = %v", addr, got)
		}
	}
}
