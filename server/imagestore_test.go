package server

import (
	"testing"
	"time"
)

// The store drops the oldest images beyond its byte budget, and none is served after its time.
func TestImageStore(t *testing.T) {
	st := newImageStore(time.Hour, 10)
	a := st.put([]byte("aaaaaa"), "image/png")
	b := st.put([]byte("bbbbbb"), "image/png")
	if _, ok := st.get(a); ok {
		t.Error("the oldest image is still served beyond the byte budget")
	}
	if img, ok := st.get(b); !ok || string(img.data) != "bbbbbb" || img.contentType != "image/png" {
		t.Errorf("the newest image: %+v, %v", img, ok)
	}
	if a == b || len(a) != 48 {
		t.Errorf("ids %q and %q: want distinct 192-bit hex ids", a, b)
	}
	expired := newImageStore(-time.Second, 1<<20)
	if _, ok := expired.get(expired.put([]byte("x"), "image/png")); ok {
		t.Error("an expired image is served")
	}
}
