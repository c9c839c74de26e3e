package server

import (
	"fmt"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/toklip/toklip/llm"
)

// usageKey holds a request's token counts in its gin context, for its log line.
const usageKey = "toklip.usage"

// setUsage keeps a request's token counts for its log line.
func setUsage(c *gin.Context, u llm.Usage) { c.Set(usageKey, u) }

// logRequests writes one line per request once it is answered, as ollama's server does: when,
// the status, how long it took, the method and route (the route's pattern, not a client's URL),
// and the tokens read and written.
func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	if s.opts.Log == nil {
		return
	}
	route := c.FullPath()
	if route == "" {
		route = c.Request.URL.Path
	}
	tokens := ""
	if v, ok := c.Get(usageKey); ok {
		u := v.(llm.Usage)
		tokens = fmt.Sprintf(" | %d prompt tokens (%d of images), %d out (%d image ids)", u.PromptTokens, u.PromptImageTokens, u.CompletionTokens, u.ImageTokens)
	}
	fmt.Fprintf(s.opts.Log, "%s | %d | %10s | %s %s%s\n", start.Format("2006-01-02 15:04:05"), c.Writer.Status(),
		time.Since(start).Round(time.Millisecond), c.Request.Method, route, tokens)
}
