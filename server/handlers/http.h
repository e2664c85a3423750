// The http handler: a plan's `http` call (method, url, headers, body,
// timeout, accept_status, max_response_bytes, max_redirects) made through an
// HttpClient (http_client.h), its answer turned into the call's value: a JSON
// body parsed into a value, any other UTF-8 body as a string, with status and
// headers. Statuses outside accept_status fail the call with the code
// CodeForHttpStatus gives.
//
// Thread-safety: the handler posts its `done` to the engine's Env; it may be
// called from any thread.

#ifndef WEFT_SERVER_HANDLERS_HTTP_H_
#define WEFT_SERVER_HANDLERS_HTTP_H_

#include "absl/status/status.h"
#include "server/handlers/http_client.h"
#include "server/handlers/registry.h"

namespace weft::handlers {

// Registers the `http` handler, backed by `client` (which must outlive the
// registry's use). ALREADY_EXISTS if the name is taken.
absl::Status RegisterHttpHandler(HandlerRegistry& registry, HttpClient& client);

// The gRPC code for an HTTP status outside accept_status: 404 NOT_FOUND, 401
// UNAUTHENTICATED, 403 PERMISSION_DENIED, 429 and 5xx UNAVAILABLE, any other
// FAILED_PRECONDITION.
absl::StatusCode CodeForHttpStatus(int status);

}  // namespace weft::handlers

#endif  // WEFT_SERVER_HANDLERS_HTTP_H_
