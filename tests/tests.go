// Package tests holds toklip's end-to-end suites: they build the toklip binary and drive it as a
// user does, with real files, real HTTP and real clients (the command line, OpenAI's Go client
// against `toklip serve`). Each package's own tests stay beside it; what needs the whole binary
// is here. `make test` runs them; `go test -short` skips them.
package tests
