package server_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/toklip/toklip/demo"
	"github.com/toklip/toklip/llm"
	"github.com/toklip/toklip/server"
)

// Hostile clients, found by trying the server with foreign clients: no single request may take
// the process down, hold a place in the queue without sending its body, or leave memory behind.

// call posts body and returns the status and the error object's message, param and code.
func call(t *testing.T, base, path, body string) (status int, message, param, code string) {
	t.Helper()
	resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct {
			Message string  `json:"message"`
			Param   *string `json:"param"`
			Code    *string `json:"code"`
		} `json:"error"`
	}
	json.Unmarshal(raw, &e)
	if e.Error.Param != nil {
		param = *e.Error.Param
	}
	if e.Error.Code != nil {
		code = *e.Error.Code
	}
	return resp.StatusCode, e.Error.Message, param, code
}

func chatWithImage(data []byte) string {
	return `{"model":"toklip-demo","max_tokens":4,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,` +
		base64.StdEncoding.EncodeToString(data) + `"}},{"type":"text","text":"Describe the image."}]}]}`
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func encodePNG(t *testing.T, img image.Image) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// withPNGSize rewrites a PNG's IHDR size (and its CRC): a header that lies.
func withPNGSize(b []byte, w, h uint32) []byte {
	b = bytes.Clone(b)
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

func hostileImages(t *testing.T) []struct {
	name string
	data []byte
	ok   bool // a real image within the limits: answered
} {
	scene := demo.Scenes(demo.Train, 1, 1)[0].Render()
	scenePNG := encodePNG(t, scene)
	var jpg bytes.Buffer
	jpeg.Encode(&jpg, scene, nil)
	jpegHuge := bytes.Clone(jpg.Bytes())
	for i := 2; i+9 < len(jpegHuge); i++ { // the SOF0 marker's height and width: 65000 x 65000
		if jpegHuge[i] == 0xFF && jpegHuge[i+1] == 0xC0 {
			binary.BigEndian.PutUint16(jpegHuge[i+5:], 65000)
			binary.BigEndian.PutUint16(jpegHuge[i+7:], 65000)
			break
		}
	}
	var gifScreen bytes.Buffer // a 1x1 frame on a 65535 x 65535 screen
	gif.Encode(&gifScreen, image.NewPaletted(image.Rect(0, 0, 1, 1), color.Palette{color.Black, color.White}), nil)
	gifHuge := gifScreen.Bytes()
	binary.LittleEndian.PutUint16(gifHuge[6:], 65535)
	binary.LittleEndian.PutUint16(gifHuge[8:], 65535)
	webpHuge, err := os.ReadFile("../visiontok/testdata/formats/pattern.webp")
	if err != nil {
		t.Fatal(err)
	}
	webpHuge = bytes.Clone(webpHuge) // its VP8L header's size: 16384 x 16384
	binary.LittleEndian.PutUint32(webpHuge[21:], binary.LittleEndian.Uint32(webpHuge[21:])&^(1<<28-1)|16383|16383<<14)
	bmpHuge := make([]byte, 54)
	copy(bmpHuge, "BM")
	binary.LittleEndian.PutUint32(bmpHuge[10:], 54)
	binary.LittleEndian.PutUint32(bmpHuge[14:], 40)
	binary.LittleEndian.PutUint32(bmpHuge[18:], 30000)
	binary.LittleEndian.PutUint32(bmpHuge[22:], 30000)
	binary.LittleEndian.PutUint16(bmpHuge[26:], 1)
	binary.LittleEndian.PutUint16(bmpHuge[28:], 24)
	return []struct {
		name string
		data []byte
		ok   bool
	}{
		// The killer: 4 KB that once asked for a 256,000,000-pixel resize.
		{"a 1,000,000 x 1 PNG", encodePNG(t, image.NewGray(image.Rect(0, 0, 1_000_000, 1))), false},
		{"a PNG header claiming 100000 x 100000", withPNGSize(scenePNG, 100000, 100000), false},
		{"a PNG header claiming 2^31 x 2^31", withPNGSize(scenePNG, 1<<31-1, 1<<31-1), false},
		{"a JPEG header claiming 65000 x 65000", jpegHuge, false},
		{"a GIF screen of 65535 x 65535", gifHuge, false},
		{"a WebP header claiming 16384 x 16384", webpHuge, false},
		{"a BMP header claiming 30000 x 30000", bmpHuge, false},
		// 36 megapixels of zeros in 110 KB: within the limits, decoded (144 MB) and let go.
		{"a 6000 x 6000 PNG of zeros", encodePNG(t, image.NewGray(image.Rect(0, 0, 6000, 6000))), true},
	}
}

// No image can take the server down or leave memory behind: each is answered (400 with a clear
// message, or 200 for the big but valid one), the server stays healthy, and the live heap
// returns near where it was.
func TestHostileImages(t *testing.T) {
	base := start(t, server.Options{})
	if status, msg, _, _ := call(t, base, "/v1/chat/completions", chatWithImage(encodePNG(t, demo.Scenes(demo.Train, 1, 1)[0].Render()))); status != 200 {
		t.Fatalf("a normal chat: %d %s", status, msg)
	}
	baseline := heapInUse()
	for _, c := range hostileImages(t) {
		status, msg, param, code := call(t, base, "/v1/chat/completions", chatWithImage(c.data))
		switch {
		case c.ok && status != 200:
			t.Errorf("%s: %d %s", c.name, status, msg)
		case !c.ok && (status != 400 || code != "invalid_image" || param != "messages[0].content[0].image_url.url"):
			t.Errorf("%s: %d %q (param %q, code %q), want 400 invalid_image", c.name, status, msg, param, code)
		}
		t.Logf("%s (%d bytes): %d %s", c.name, len(c.data), status, msg)
		if resp, err := http.Get(base + "/health"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("after %s the server is not healthy: %v", c.name, err)
		}
		if heap := heapInUse(); heap > baseline+64<<20 {
			t.Errorf("after %s the live heap is %d MB, %d MB over its baseline", c.name, heap>>20, (heap-baseline)>>20)
		}
	}
}

// slowClient sends a request's headers and the start of its body, then trickles or stops. It
// returns what the server answered, or "" when the connection just closed.
func slowClient(t *testing.T, addr string, chunked bool, stop <-chan struct{}) <-chan string {
	out := make(chan string, 1)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	framing := "Content-Length: 100000\r\n"
	if chunked {
		framing = "Transfer-Encoding: chunked\r\n"
	}
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s\r\n", framing)
	go func() { // a byte now and then, never the end
		defer conn.Close()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				piece := "{"
				if chunked {
					piece = "1\r\n{\r\n"
				}
				if _, err := conn.Write([]byte(piece)); err != nil {
					return
				}
			}
		}
	}()
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			out <- ""
			return
		}
		body, _ := io.ReadAll(resp.Body)
		out <- fmt.Sprintf("%d %s", resp.StatusCode, body)
	}()
	return out
}

// Clients that send their bodies a byte at a time (or a chunked body that never ends) hold no
// slot: with one slot (an engine of one sequence) and one place in the queue taken by nobody, a
// normal request is answered while twelve of them trickle, and each of them gets 408 at the body
// deadline.
func TestSlowBodiesHoldNoSlot(t *testing.T) {
	base, _, _ := serveEngine(t, server.Options{MaxQueue: 1, BodyTimeout: 3 * time.Second},
		openDemo(t, llm.EngineOptions{Backbone: llm.Options{Sequences: 1}}))
	addr := strings.TrimPrefix(base, "http://")
	stop := make(chan struct{})
	defer close(stop)
	var answers []<-chan string
	for i := range 12 {
		answers = append(answers, slowClient(t, addr, i%3 == 0, stop))
	}
	time.Sleep(500 * time.Millisecond) // all of them inside their bodies
	start := time.Now()
	status, msg, _, _ := call(t, base, "/v1/chat/completions", `{"model":"toklip-demo","max_tokens":3,"messages":[{"role":"user","content":"Draw a red star."}]}`)
	if status != 200 {
		t.Fatalf("a normal chat among slow bodies: %d %s", status, msg)
	}
	if waited := time.Since(start); waited > 2500*time.Millisecond {
		t.Errorf("the normal chat took %s: it waited for the slow bodies", waited)
	}
	for i, a := range answers {
		select {
		case got := <-a:
			if !strings.HasPrefix(got, "408 ") || !strings.Contains(got, "request_timeout") {
				t.Errorf("slow client %d got %q, want 408 request_timeout", i, got)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("slow client %d was never answered: the body deadline did not hold", i)
		}
	}
}

// The body budget counts what arrived, not what was announced: bodies of 1 MB announced and
// barely begun leave room for others; two bodies sent almost whole take the budget, and a third
// request is turned away (429) until they are done.
func TestBodyBudget(t *testing.T) {
	base := start(t, server.Options{MaxBodyBytes: 1 << 20, MaxBodyMemory: 2 << 20, BodyTimeout: 3 * time.Second})
	addr := strings.TrimPrefix(base, "http://")
	body := `{"model":"toklip-demo","input":"a red star"}`
	hold := func(sent int) []net.Conn {
		var conns []net.Conn
		for range 2 {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 1<<20-16)
			conn.Write(bytes.Repeat([]byte(" "), sent))
			conns = append(conns, conn)
		}
		time.Sleep(300 * time.Millisecond)
		return conns
	}
	closeAll := func(conns []net.Conn) {
		for _, c := range conns {
			c.Close()
		}
		time.Sleep(300 * time.Millisecond)
	}
	announced := hold(1)
	if status, msg, _, _ := call(t, base, "/v1/embeddings", body); status != 200 {
		t.Errorf("with two bodies announced and not sent: %d %s, want 200", status, msg)
	}
	closeAll(announced)
	sent := hold(900 << 10)
	if status, msg, _, code := call(t, base, "/v1/embeddings", body); status != 429 || code != "server_busy" {
		t.Errorf("with the budget taken: %d %s (%s), want 429", status, msg, code)
	}
	closeAll(sent)
	if status, msg, _, _ := call(t, base, "/v1/embeddings", body); status != 200 {
		t.Errorf("after they left: %d %s", status, msg)
	}
}

// Requests that can never be answered are refused as 400 before any work: a logit_bias that bans
// every token, and a prompt that fills the context.
func TestUnanswerableRequests(t *testing.T) {
	base, e, _ := serve(t, server.Options{})
	vocab := e.Backbone().Config().Vocab
	var ban strings.Builder
	for id := range vocab {
		if id > 0 {
			ban.WriteString(",")
		}
		fmt.Fprintf(&ban, `"%d":-100`, id)
	}
	status, msg, param, code := call(t, base, "/v1/chat/completions", `{"model":"toklip-demo","logit_bias":{`+ban.String()+`},"messages":[{"role":"user","content":"hi"}]}`)
	if status != 400 || param != "logit_bias" || code != "nothing_to_sample" {
		t.Errorf("every token banned: %d %q (param %q, code %q)", status, msg, param, code)
	}
	// The shortest prompt the context cannot hold with room for one token, found by the engine's
	// own count, is refused; one word less is answered.
	words := 1
	for {
		msgs := []llm.Message{{Role: "user", Content: []llm.Part{{Text: strings.Repeat("red ", words)}}}}
		if _, err := e.BuildPrompt(msgs, true); err != nil {
			break
		}
		words++
	}
	prompt := func(n int) string {
		return `{"model":"toklip-demo","max_tokens":1,"messages":[{"role":"user","content":"` + strings.Repeat("red ", n) + `"}]}`
	}
	if status, msg, _, code := call(t, base, "/v1/chat/completions", prompt(words)); status != 400 || code != "context_length_exceeded" {
		t.Errorf("a prompt of %d words that fills the context: %d %q (%s)", words, status, msg, code)
	}
	if status, msg, _, _ := call(t, base, "/v1/chat/completions", prompt(words-1)); status != 200 {
		t.Errorf("a prompt of %d words: %d %q", words-1, status, msg)
	}
}
