package main

import (
	"testing"
	"time"
)

// TOKLIP_HOST reads as OLLAMA_HOST does: a scheme, a port and a path are optional.
func TestServerURL(t *testing.T) {
	for _, c := range []struct{ env, want string }{
		{"", "http://127.0.0.1:8750"},
		{"0.0.0.0", "http://0.0.0.0:8750"},
		{"example.com:9000", "http://example.com:9000"},
		{"https://example.com", "https://example.com:8750"},
		{"http://[::1]:1234/toklip/", "http://[::1]:1234/toklip"},
		{"[::1]", "http://[::1]:8750"},
	} {
		t.Setenv(hostEnv, c.env)
		u, err := serverURL()
		if err != nil || u.String() != c.want {
			t.Errorf("%s=%q: %v %v, want %s", hostEnv, c.env, u, err, c.want)
		}
	}
	t.Setenv(hostEnv, "ftp://example.com")
	if _, err := serverURL(); err == nil {
		t.Error("an ftp host was taken")
	}
}

func TestParseBytes(t *testing.T) {
	for v, want := range map[string]int64{"0": 0, "512": 512, "8GB": 8e9, "1.5 GiB": 3 << 29, "512MiB": 512 << 20, "2kb": 2000} {
		if got, err := parseBytes(v); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", v, got, err, want)
		}
	}
	for _, v := range []string{"", "GB", "-1GB", "8 parsecs", "1e30TB"} {
		if _, err := parseBytes(v); err == nil {
			t.Errorf("parseBytes(%q) took it", v)
		}
	}
	if b, err := memoryBudget("auto"); err != nil || b <= 0 {
		t.Errorf("-memory auto: %d, %v", b, err)
	}
}

func TestEnvDuration(t *testing.T) {
	for v, want := range map[string]time.Duration{"": 5 * time.Minute, "30m": 30 * time.Minute, "-1": -time.Second, "-1s": -time.Second, "90": 90 * time.Second, "soon": 5 * time.Minute, "0": 0} {
		t.Setenv("TOKLIP_KEEP_ALIVE", v)
		if got := envDuration("TOKLIP_KEEP_ALIVE", 5*time.Minute); got != want {
			t.Errorf("TOKLIP_KEEP_ALIVE=%q: %v, want %v", v, got, want)
		}
	}
}
