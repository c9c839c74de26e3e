package server

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// tokensRequest asks what TokLIP makes of one image (toklip's route, read-only): its image is
// a data URL, or an http(s) URL from a host the server may fetch from, as in a chat's image_url.
type tokensRequest struct {
	Model string `json:"model"`
	Image string `json:"image"`
}

// tokensResponse is the image's discrete tokens: the crop the encoder read (the ids cover it in
// a grid of grid x grid cells, raster order: ids[r][c] is the cell at row r, column c), and the
// image the VQ decoder draws back from the ids alone, both base64 PNGs of size x size pixels.
type tokensResponse struct {
	Object         string    `json:"object"` // "image.tokens"
	Model          string    `json:"model"`
	Grid           int       `json:"grid"`
	Size           int       `json:"size"`
	IDs            [][]int32 `json:"ids"`
	Crop           string    `json:"crop"`
	Reconstruction string    `json:"reconstruction"`
}

// imageTokens answers POST /v1/images/tokens.
func (s *Server) imageTokens(c *gin.Context) {
	var req tokensRequest
	if err := decode(c.Request.Body, &req); err != nil {
		abort(c, err)
		return
	}
	if req.Image == "" {
		abort(c, invalid("image", "image is required: a data URL (data:image/png;base64,...)"))
		return
	}
	l, ok := s.use(c, req.Model, nil)
	if !ok {
		return
	}
	defer l.Release()
	m := l.Value()
	if !m.info.ReadsImages {
		abort(c, invalid("model", "the model %q has no TokLIP file to read images with", m.name))
		return
	}
	data, err := s.imageBytes(c.Request.Context(), req.Image)
	if err != nil {
		abort(c, withCode(invalid("image", "image: %v", err), "invalid_image_url"))
		return
	}
	release, ok := s.enter(c, l, 1)
	if !ok {
		return
	}
	defer release()
	tok, err := m.e.Tokenize(data)
	if err != nil {
		abort(c, err)
		return
	}
	crop, err := encodeImage(tok.Crop, "png")
	if err != nil {
		abort(c, err)
		return
	}
	rec, err := encodeImage(tok.Reconstruction, "png")
	if err != nil {
		abort(c, err)
		return
	}
	ids := make([][]int32, tok.Grid)
	for r := range ids {
		ids[r] = tok.IDs[r*tok.Grid : (r+1)*tok.Grid]
	}
	c.JSON(http.StatusOK, tokensResponse{Object: "image.tokens", Model: m.name, Grid: tok.Grid,
		Size: tok.Crop.Bounds().Dx(), IDs: ids, Crop: crop, Reconstruction: rec})
}
