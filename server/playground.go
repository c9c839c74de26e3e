package server

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// The playground: a page at / that calls this server's API from the browser (chat with images,
// drawing with live partial renders, TokLIP's tokens and zero-shot ranking of an image), its
// files embedded in the binary. The page holds no secrets and needs no key to load; the API it
// calls asks for one as it asks any client.
//
//go:embed playground
var playgroundFiles embed.FS

// playgroundCSP keeps the page to this server: no script, style, font or image from elsewhere
// (images only from data: URLs, which drawn and uploaded images are), no inline script.
const playgroundCSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

func (s *Server) playgroundRoutes(r *gin.Engine) {
	files, _ := fs.Sub(playgroundFiles, "playground") // a directory embedded above: never an error
	static := http.StripPrefix("/playground/", http.FileServerFS(files))
	r.GET("/playground/*file", func(c *gin.Context) {
		c.Header("Content-Security-Policy", playgroundCSP)
		c.Header("X-Content-Type-Options", "nosniff")
		c.Header("Cache-Control", "no-cache") // revalidated: a new binary serves its own files
		static.ServeHTTP(c.Writer, c.Request)
	})
	running := func(c *gin.Context) {
		c.String(http.StatusOK, "toklip is running (ollama API at /api, OpenAI's at /v1, the playground at / in a browser)")
	}
	r.HEAD("/", running)
	r.GET("/", func(c *gin.Context) {
		// A browser gets the page; a client or script that checks the server (as ollama's do)
		// gets the line it expects.
		if !strings.Contains(c.GetHeader("Accept"), "text/html") {
			running(c)
			return
		}
		page, err := playgroundFiles.ReadFile("playground/index.html")
		if err != nil {
			abort(c, err)
			return
		}
		c.Header("Content-Security-Policy", playgroundCSP)
		c.Header("X-Content-Type-Options", "nosniff")
		c.Header("Cache-Control", "no-cache")
		c.Data(http.StatusOK, "text/html; charset=utf-8", page)
	})
}
