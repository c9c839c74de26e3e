package server

import (
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// imageStore keeps drawn images for response_format "url": each under an unguessable id, for
// ttl, the oldest dropped first beyond maxBytes. Like OpenAI's, the URLs need no key: holding
// one is the permission.
type imageStore struct {
	mu       sync.Mutex
	ttl      time.Duration
	maxBytes int
	size     int
	items    map[string]storedImage
	order    []string // ids, oldest first
}

type storedImage struct {
	data        []byte
	contentType string
	expires     time.Time
}

func newImageStore(ttl time.Duration, maxBytes int) *imageStore {
	return &imageStore{ttl: ttl, maxBytes: maxBytes, items: map[string]storedImage{}}
}

// put stores an image and returns its id.
func (st *imageStore) put(data []byte, contentType string) string {
	id := randomID() + randomID()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.items[id] = storedImage{data: data, contentType: contentType, expires: time.Now().Add(st.ttl)}
	st.order = append(st.order, id)
	st.size += len(data)
	for len(st.order) > 1 && (st.size > st.maxBytes || time.Now().After(st.items[st.order[0]].expires)) {
		st.size -= len(st.items[st.order[0]].data)
		delete(st.items, st.order[0])
		st.order = st.order[1:]
	}
	return id
}

func (st *imageStore) get(id string) (storedImage, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	img, ok := st.items[id]
	if !ok || time.Now().After(img.expires) {
		return storedImage{}, false
	}
	return img, true
}

func (s *Server) serveImage(c *gin.Context) {
	img, ok := s.images.get(c.Param("id"))
	if !ok {
		abort(c, withCode(&apiError{Status: http.StatusNotFound, Type: "invalid_request_error",
			Message: "no such image: image URLs are served for " + s.images.ttl.String() + " after they are drawn"}, "image_not_found"))
		return
	}
	c.Header("Cache-Control", "private, max-age=3600")
	c.Data(http.StatusOK, img.contentType, img.data)
}
