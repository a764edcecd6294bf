// What went wrong with a request, as the server names it: the kind is the JSON error's cause in
// the logs and the `kind` label of xmodal_errors_total (docs/serving.md "Errors"); the status
// is chosen where the error is found.
#pragma once

#include <stdexcept>
#include <string>

namespace xmodal::serve {

enum class ErrorKind {
  bad_request,           ///< HTTP the server cannot read (400, 411)
  bad_json,              ///< the body is empty, not JSON or nested too deep
  bad_field,             ///< a field is missing, unknown or of the wrong type or range
  bad_base64,            ///< an image field that is not base64
  bad_image,             ///< an image that cannot be read or decoded
  forbidden_path,        ///< an image path outside --image-root, or paths not allowed (403)
  image_root,            ///< --image-root itself cannot be read (500)
  too_large,             ///< a body or header over its limit (413, 431)
  too_many_items,        ///< more items than --max-items or --queue (413)
  too_many_connections,  ///< over --max-connections (503)
  unsupported,           ///< a Content-Encoding or Content-Type the server does not take (415)
  not_found,             ///< no such path (404), or not with that method (405)
  unauthorized,          ///< no API key or the wrong one (401)
  timeout,               ///< the request did not arrive in time (408), no answer in time (504)
  loading,               ///< the model is not loaded yet (503)
  stopping,              ///< the server is shutting down (503)
  queue_full,            ///< the model's queue is full (503)
  no_index,              ///< /v1/search without --index (404)
  wrong_task,            ///< an endpoint the checkpoint's task does not serve (400)
  model,                 ///< the model failed on a batch (500)
  internal,              ///< anything else (500)
};

/// The kind's name (bad_json, ...).
const char* to_string(ErrorKind kind);

/// A request the server refuses: its status, kind and a one-line message naming the field.
class HttpError : public std::runtime_error {
 public:
  HttpError(int status, ErrorKind kind, const std::string& message)
      : std::runtime_error(message), status_(status), kind_(kind) {}
  int status() const { return status_; }
  ErrorKind kind() const { return kind_; }

 private:
  int status_;
  ErrorKind kind_;
};

}  // namespace xmodal::serve
