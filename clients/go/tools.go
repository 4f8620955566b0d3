//go:build tools

// This file pins the code generator: generate.sh builds protoc-gen-go from the
// google.golang.org/protobuf version required in go.mod, so the generated code and the
// runtime it runs on always come from the same release.
package shipgate

import _ "google.golang.org/protobuf/cmd/protoc-gen-go"
