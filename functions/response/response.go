// Package response writes replies in the LXD/Incus response envelope and
// maps domain errors to it. It is the one place where an error becomes an
// HTTP status: internal causes are logged, never sent.
package response

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/trustlog/trustlog/functions/api"
)

// Error is a client-visible error: an HTTP status and a message that is safe
// to show. Wrap one with %w to give a domain error its status.
type Error struct {
	Status  int
	Message string
}

// Error implements error.
func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with status and a formatted message.
func Errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// Common client errors, with the messages Incus uses by default.
var (
	ErrForbidden = &Error{Status: http.StatusForbidden, Message: "not authorized"}
	ErrNotFound  = &Error{Status: http.StatusNotFound, Message: "not found"}
)

// BadRequest returns a 400 error with msg.
func BadRequest(msg string) error { return &Error{Status: http.StatusBadRequest, Message: msg} }

// Forbidden returns a 403 error with msg.
func Forbidden(msg string) error { return &Error{Status: http.StatusForbidden, Message: msg} }

// NotFound returns a 404 error with msg.
func NotFound(msg string) error { return &Error{Status: http.StatusNotFound, Message: msg} }

// Conflict returns a 409 error with msg.
func Conflict(msg string) error { return &Error{Status: http.StatusConflict, Message: msg} }

// Sync writes a 200 sync reply with metadata.
func Sync(w http.ResponseWriter, metadata any) {
	write(w, http.StatusOK, api.TypeSync, "Success", 200, "", metadata)
}

// SyncETag writes a 200 sync reply with an ETag computed over etagOf.
func SyncETag(w http.ResponseWriter, metadata, etagOf any) {
	SyncReply(metadata, etagOf).Write(w)
}

// Reply is a reply encoded once, to be written any number of times.
type Reply struct {
	status int
	etag   []string // the ETag header's value, nil for none
	body   []byte
}

// SyncReply encodes the 200 sync reply with metadata and an ETag computed
// over etagOf (none if etagOf is nil), as SyncETag writes it.
func SyncReply(metadata, etagOf any) Reply {
	rp := encode(http.StatusOK, api.TypeSync, "Success", 200, "", metadata)
	if etagOf == nil {
		return rp
	}
	if tag, err := ETag(etagOf); err == nil {
		rp.etag = []string{`"` + tag + `"`}
	}
	return rp
}

// Write writes the reply.
func (rp Reply) Write(w http.ResponseWriter) {
	// The header values are set as prepared one-element slices (their
	// capacity is their length, so an Add elsewhere copies rather than
	// writes into them), which saves canonicalising the keys and
	// allocating the values on every request.
	h := w.Header()
	if rp.etag != nil {
		h["Etag"] = rp.etag
	}
	h["Content-Type"] = jsonContentType
	w.WriteHeader(rp.status)
	_, _ = w.Write(rp.body)
}

// jsonContentType is the Content-Type header value of every reply.
var jsonContentType = []string{"application/json"}

// EmptySync writes a 200 sync reply with metadata {}.
func EmptySync(w http.ResponseWriter) { Sync(w, struct{}{}) }

// Created writes a 201 sync reply with a Location header and null metadata.
func Created(w http.ResponseWriter, location string) {
	w.Header().Set("Location", location)
	write(w, http.StatusCreated, api.TypeSync, "Success", 200, "", nil)
}

// CreatedWith writes a 201 sync reply with a Location header and metadata.
func CreatedWith(w http.ResponseWriter, location string, metadata any) {
	w.Header().Set("Location", location)
	write(w, http.StatusCreated, api.TypeSync, "Success", 200, "", metadata)
}

// Async writes a 202 reply for a created operation.
func Async(w http.ResponseWriter, op api.Operation) {
	url := "/1.0/operations/" + op.ID
	w.Header().Set("Location", url)
	write(w, http.StatusAccepted, api.TypeAsync, "Operation created", 100, url, op)
}

// Fail writes err in the error envelope. An error that is (or wraps) an
// *Error is sent as it is; a request body that was too large becomes 413;
// anything else is logged and sent as a bare 500.
func Fail(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var e *Error
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &e):
	case errors.As(err, &tooBig):
		e = &Error{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("request body larger than %d bytes", tooBig.Limit)}
	default:
		if log == nil {
			log = slog.Default()
		}
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &Error{Status: http.StatusInternalServerError, Message: "internal server error"}
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	write(w, e.Status, api.TypeError, "", 0, "", nil, e)
}

func write(w http.ResponseWriter, httpStatus int, typ, status string, code int, op string, metadata any, errs ...*Error) {
	encode(httpStatus, typ, status, code, op, metadata, errs...).Write(w)
}

// encode encodes a reply; a metadata that does not encode makes it a 500.
func encode(httpStatus int, typ, status string, code int, op string, metadata any, errs ...*Error) Reply {
	raw, err := json.Marshal(metadata)
	if err != nil {
		raw, httpStatus, typ, status, code = []byte("null"), http.StatusInternalServerError, api.TypeError, "", 0
		errs = []*Error{{Status: 500, Message: "internal server error"}}
	}
	errCode, errMsg := 0, ""
	if len(errs) > 0 {
		errCode, errMsg = errs[0].Status, errs[0].Message
	}
	// The envelope is written by hand around the metadata, already encoded:
	// encoding an api.Response would validate and compact it a second time.
	buf := make([]byte, 0, len(raw)+160)
	buf = append(buf, `{"type":`...)
	buf = appendJSONString(buf, typ)
	buf = append(buf, `,"status":`...)
	buf = appendJSONString(buf, status)
	buf = append(buf, `,"status_code":`...)
	buf = strconv.AppendInt(buf, int64(code), 10)
	buf = append(buf, `,"operation":`...)
	buf = appendJSONString(buf, op)
	buf = append(buf, `,"error_code":`...)
	buf = strconv.AppendInt(buf, int64(errCode), 10)
	buf = append(buf, `,"error":`...)
	buf = appendJSONString(buf, errMsg)
	buf = append(buf, `,"metadata":`...)
	buf = append(buf, raw...)
	buf = append(buf, "}\n"...)
	return Reply{status: httpStatus, body: buf}
}

// appendJSONString appends s as a JSON string.
func appendJSONString(buf []byte, s string) []byte {
	raw, _ := json.Marshal(s) // a string always encodes
	return append(buf, raw...)
}

// ETag returns the hex SHA-256 of the JSON encoding of v, as LXD and Incus
// compute it.
func ETag(v any) (string, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:]), nil
}

// CheckETag compares the request's If-Match header with the ETag of v. A
// request without If-Match passes; a mismatch is a 412 error.
func CheckETag(r *http.Request, v any) error {
	match := strings.Trim(r.Header.Get("If-Match"), `"`)
	if match == "" {
		return nil
	}
	have, err := ETag(v)
	if err != nil {
		return err
	}
	if have != match {
		return &Error{Status: http.StatusPreconditionFailed, Message: fmt.Sprintf("ETag doesn't match: %s vs %s", have, match)}
	}
	return nil
}

// MaxBody is the largest request body accepted, as in Incus.
const MaxBody = 1 << 20

// DecodeJSON reads the request body (at most MaxBody bytes) into v. A body
// that is not valid JSON is a 400 error; one that is too large is a 413.
// Fields v does not have are ignored, as LXD and Incus do.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeJSON(w, r, v, false)
}

// DecodeJSONStrict is DecodeJSON for bodies whose every field must mean
// something: a field v does not have, or anything but white space after
// the JSON value, is a 400 error. Use it where a field the server does not
// know would otherwise be dropped without a word, such as the edit of a
// trust-store entry.
func DecodeJSONStrict(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeJSON(w, r, v, true)
}

func decodeJSON(w http.ResponseWriter, r *http.Request, v any, strict bool) error {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	dec := json.NewDecoder(r.Body)
	if strict {
		dec.DisallowUnknownFields()
	}
	err := dec.Decode(v)
	if err == nil && strict {
		if _, next := dec.Token(); next != io.EOF {
			err = errors.Join(next, errTrailingData)
		}
	}
	var tooBig *http.MaxBytesError
	var answer *Error // a body that timed out, say
	switch {
	case err == nil:
		return nil
	case errors.As(err, &tooBig), errors.As(err, &answer):
		return err
	case errors.Is(err, errTrailingData):
		return BadRequest(errTrailingData.Error())
	}
	return BadRequest(err.Error())
}

// errTrailingData refuses a strict body with more after its JSON value.
var errTrailingData = errors.New("unexpected data after the JSON body")
