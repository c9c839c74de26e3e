package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// fetcher gets images named by http(s) URLs, for the hosts an operator allowed. The dialer checks
// the address it actually connects to, after DNS, so an allowed name that resolves (or is
// rebound, or redirects) to a loopback, private, link-local or otherwise internal address is
// refused: a client cannot make the server reach into the network it sits in.
type fetcher struct {
	hosts         []string // exact names, or "*.example.com" for its subdomains
	maxBytes      int64
	client        *http.Client
	allowInternal bool // tests only: their servers are on loopback
}

func newFetcher(hosts []string, timeout time.Duration, maxBytes int64) *fetcher {
	f := &fetcher{hosts: hosts, maxBytes: maxBytes}
	dialer := &net.Dialer{Timeout: timeout, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		if !f.allowInternal && internal(ap.Addr()) {
			return fmt.Errorf("%s is an internal address", ap.Addr())
		}
		return nil
	}}
	f.client = &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DialContext: dialer.DialContext, Proxy: nil, TLSHandshakeTimeout: timeout, ResponseHeaderTimeout: timeout},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("more than 3 redirects")
			}
			return f.allowed(req.URL)
		},
	}
	return f
}

func internal(a netip.Addr) bool {
	a = a.Unmap()
	cgnat := netip.MustParsePrefix("100.64.0.0/10")
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || cgnat.Contains(a) ||
		(a.Is4() && a.As4()[0] == 0)
}

func (f *fetcher) allowed(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q: only http and https", u.Scheme)
	}
	host := strings.ToLower(u.Hostname())
	for _, h := range f.hosts {
		if h == host || strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]) {
			return nil
		}
	}
	return fmt.Errorf("host %q is not on this server's list of image hosts", host)
}

// fetch returns the image bytes at raw: allowed host, status 200, an image media type, at most
// maxBytes.
func (f *fetcher) fetch(ctx context.Context, raw string) ([]byte, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("bad URL: %v", err)
	}
	if err := f.allowed(u); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "image/*")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch the image: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch the image: %s", resp.Status)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); !strings.HasPrefix(mt, "image/") {
		return nil, fmt.Errorf("fetch the image: the server sent %q, not an image", resp.Header.Get("Content-Type"))
	}
	if resp.ContentLength > f.maxBytes {
		return nil, fmt.Errorf("the image is %d bytes, over the limit of %d", resp.ContentLength, f.maxBytes)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch the image: %v", err)
	}
	if int64(len(b)) > f.maxBytes {
		return nil, fmt.Errorf("the image is over the limit of %d bytes", f.maxBytes)
	}
	return b, nil
}
