package shipgate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"shipgate.local/clients/go/shipgatev1"
)

// Code is a gRPC status code, with the numbers of shipgate.v1.Code (rpc.proto) and
// google.rpc.Code.
type Code int32

// The status codes.
const (
	OK                 Code = 0
	Cancelled          Code = 1
	Unknown            Code = 2
	InvalidArgument    Code = 3
	DeadlineExceeded   Code = 4
	NotFound           Code = 5
	AlreadyExists      Code = 6
	PermissionDenied   Code = 7
	ResourceExhausted  Code = 8
	FailedPrecondition Code = 9
	Aborted            Code = 10
	OutOfRange         Code = 11
	Unimplemented      Code = 12
	Internal           Code = 13
	Unavailable        Code = 14
	DataLoss           Code = 15
	Unauthenticated    Code = 16
)

// String returns the code's name as rpc.proto spells it: "OK", "NOT_FOUND", "UNAVAILABLE", ...;
// "Code(N)" for a number outside the enum.
func (c Code) String() string {
	if name, ok := shipgatev1.Code_name[int32(c)]; ok {
		return name
	}
	return fmt.Sprintf("Code(%d)", int32(c))
}

// ParseCode returns the code named name ("NOT_FOUND"; case-insensitive).
func ParseCode(name string) (Code, bool) {
	v, ok := shipgatev1.Code_value[strings.ToUpper(name)]
	return Code(v), ok
}

// The reasons of the failures the client makes itself (Error.Local is true for these), the
// Reason* constants, are generated from proto/shipgate/v1/client_policy.json into
// policy_gen.go, like every client's.

// Violation is one entry of ErrorDetail.field_violations.
type Violation struct {
	Field       string // dotted path, e.g. "order_id" or "receiver.phone"
	Description string // what is wrong
}

// Error is the outcome of a call that did not end with OK: the gateway's Status and
// ErrorDetail (rpc.proto), or a failure the client made itself (Local). Every error a call
// returns is an *Error; use errors.As, AsError or CodeOf to read it.
type Error struct {
	Code               Code          // gRPC code; never OK
	Message            string        // human-readable English; may change between releases
	Reason             string        // stable upper-case reason to branch on, e.g. "UPSTREAM_NOT_FOUND"
	Retryable          bool          // the same call may succeed later (same idempotency key)
	UpstreamHTTPStatus int32         // the provider's HTTP status; 0 when it did not answer
	Provider           string        // lower-case provider name ("boscod"), when known
	ProviderCode       string        // the provider's own error code, verbatim
	ProviderMessage    string        // the provider's own error text, verbatim
	Violations         []Violation   // per-field problems
	RetryAfter         time.Duration // wait before retrying (the gateway's retry_after_ms); 0 if unknown
	Attempts           int           // attempts sent or tried; 0 when the call failed before any
	Local              bool          // made by the client (transport or local check), not the gateway
	RequestID          string        // the RpcRequest.request_id used; "" when none was made

	cause error // context.Canceled / context.DeadlineExceeded / the socket's error, for Unwrap
}

// Error formats the error as "shipgate: CODE (REASON): message".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("shipgate: ")
	b.WriteString(e.Code.String())
	if e.Reason != "" {
		b.WriteString(" (")
		b.WriteString(e.Reason)
		b.WriteString(")")
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.ProviderCode != "" || e.ProviderMessage != "" {
		fmt.Fprintf(&b, " [%s: %s %s]", e.Provider, e.ProviderCode, e.ProviderMessage)
	}
	return b.String()
}

// Unwrap returns the underlying cause of a local failure: context.Canceled or
// context.DeadlineExceeded when the call's context ended it (so errors.Is(err,
// context.DeadlineExceeded) works), the socket's error for transport failures, else nil.
func (e *Error) Unwrap() error { return e.cause }

// AsError returns err as an *Error when it is one (or wraps one).
func AsError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// CodeOf returns the status code of err: OK for nil, the Code of an *Error, Cancelled or
// DeadlineExceeded for the context errors, Unknown for anything else.
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	if e, ok := AsError(err); ok {
		return e.Code
	}
	switch {
	case errors.Is(err, context.Canceled):
		return Cancelled
	case errors.Is(err, context.DeadlineExceeded):
		return DeadlineExceeded
	}
	return Unknown
}

// ReasonOf returns the Reason of err when it is an *Error, else "".
func ReasonOf(err error) string {
	if e, ok := AsError(err); ok {
		return e.Reason
	}
	return ""
}

// IsRetryable reports whether err says the same call may succeed later (ErrorDetail.retryable).
func IsRetryable(err error) bool {
	if e, ok := AsError(err); ok {
		return e.Retryable
	}
	return false
}

// localError makes a client-side failure.
func localError(code Code, reason string, retryable bool, cause error, format string, args ...interface{}) *Error {
	return &Error{
		Code:      code,
		Reason:    reason,
		Retryable: retryable,
		Message:   fmt.Sprintf(format, args...),
		Local:     true,
		cause:     cause,
	}
}

// statusError turns the gateway's non-OK Status into an *Error.
func statusError(st *shipgatev1.Status) *Error {
	e := &Error{Code: Code(st.GetCode()), Message: st.GetMessage()}
	if d := st.GetDetail(); d != nil {
		e.Reason = d.GetReason()
		e.Retryable = d.GetRetryable()
		e.UpstreamHTTPStatus = d.GetUpstreamHttpStatus()
		e.Provider = d.GetProvider()
		e.ProviderCode = d.GetProviderCode()
		e.ProviderMessage = d.GetProviderMessage()
		e.RetryAfter = time.Duration(d.GetRetryAfterMs()) * time.Millisecond
		for _, v := range d.GetFieldViolations() {
			e.Violations = append(e.Violations, Violation{Field: v.GetField(), Description: v.GetDescription()})
		}
	}
	return e
}
