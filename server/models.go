package server

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// model is OpenAI's Model object, with the modalities toklip's model reads and writes.
type model struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	OwnedBy string   `json:"owned_by"`
	Input   []string `json:"input_modalities"`
	Output  []string `json:"output_modalities"`
}

func (s *Server) model() model {
	m := model{ID: s.opts.Model, Object: "model", Created: s.created, OwnedBy: "toklip", Input: []string{"text"}, Output: []string{"text"}}
	if in := s.e.Info(); in.ReadsImages {
		m.Input = append(m.Input, "image")
		if in.Draws {
			m.Output = append(m.Output, "image")
		}
	}
	return m
}

func (s *Server) listModels(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": []model{s.model()}})
}

func (s *Server) getModel(c *gin.Context) {
	if err := s.checkModel(c.Param("model")); err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, s.model())
}
