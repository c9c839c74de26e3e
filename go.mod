module github.com/toklip/toklip

go 1.26.8

require (
	github.com/dlclark/regexp2 v1.11.4
	github.com/nlpodyssey/gopickle v0.3.0
	github.com/ollama/ollama v0.17.4
	golang.org/x/image v0.22.0
	golang.org/x/text v0.34.0
)

require (
	github.com/emirpasic/gods/v2 v2.0.0-alpha // indirect
	golang.org/x/sync v0.19.0 // indirect
	google.golang.org/protobuf v1.36.10 // indirect
)
