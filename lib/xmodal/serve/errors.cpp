#include "xmodal/serve/errors.h"

namespace xmodal::serve {

const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::bad_request:
      return "bad_request";
    case ErrorKind::bad_json:
      return "bad_json";
    case ErrorKind::bad_field:
      return "bad_field";
    case ErrorKind::bad_base64:
      return "bad_base64";
    case ErrorKind::bad_image:
      return "bad_image";
    case ErrorKind::forbidden_path:
      return "forbidden_path";
    case ErrorKind::image_root:
      return "image_root";
    case ErrorKind::too_large:
      return "too_large";
    case ErrorKind::too_many_items:
      return "too_many_items";
    case ErrorKind::too_many_connections:
      return "too_many_connections";
    case ErrorKind::unsupported:
      return "unsupported";
    case ErrorKind::not_found:
      return "not_found";
    case ErrorKind::unauthorized:
      return "unauthorized";
    case ErrorKind::timeout:
      return "timeout";
    case ErrorKind::loading:
      return "loading";
    case ErrorKind::stopping:
      return "stopping";
    case ErrorKind::queue_full:
      return "queue_full";
    case ErrorKind::no_index:
      return "no_index";
    case ErrorKind::wrong_task:
      return "wrong_task";
    case ErrorKind::model:
      return "model";
    case ErrorKind::internal:
      return "internal";
  }
  return "internal";
}

}  // namespace xmodal::serve
