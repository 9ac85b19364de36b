// GET /v1/openapi.json: the API's machine-readable contract (docs/openapi.yaml, compiled in).
// Public like /healthz: the document describes the API, it reveals nothing of the ledger.
#include "daemon/openapi_doc.h"
#include "daemon/routes.h"

namespace mqledger {

void add_docs_routes(http::router& r) {
    r.add("GET", "/v1/openapi.json", route_kind::open, [](const http::request_context&) {
        http::response res;
        res.content_type = "application/json";
        res.body = docs::openapi_json();
        return res;
    });
}

} // namespace mqledger
