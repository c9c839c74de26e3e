//go:build toklip_nodemo

package modelfiles

import (
	"io/fs"
	"os"
)

// A binary built with -tags toklip_nodemo (the GPU check's, which must travel small) reads the
// demo model from $TOKLIP_DEMO_DIR/toklip-demo, by default modelfiles/toklip-demo under the
// working folder (the repository's root).
var demoFS fs.FS = os.DirFS(demoDir())

func demoDir() string {
	if d := os.Getenv("TOKLIP_DEMO_DIR"); d != "" {
		return d
	}
	return "modelfiles"
}
