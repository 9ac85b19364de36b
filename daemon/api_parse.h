// Request bodies of API.md as core commands. Strict: a body that is not the documented shape
// (not an object, a wrong JSON type, an unknown key) is `malformed` (400); a value of the right
// type that the API does not accept (an unknown product, a bad time, an id with control
// characters) is `invalid` (422) naming the field. Rules that depend on state or policy (terms,
// prices per billing model, time zones the rules cannot use) are the core's to refuse. Pure
// functions; they throw http::api_error. Thread-safe.
#pragma once

#include "daemon/router.h"

#include "ledger/commands.h"

#include <boost/json/value.hpp>

#include <string>
#include <string_view>

namespace mqledger::api {

/// An instance or account id: 1–128 bytes of letters, digits and `-_.:@`, so that it is safe in
/// stream names, URLs and logs. Throws api_error 422 naming `field`.
void check_id(std::string_view id, std::string_view field);

[[nodiscard]] commands::purchase parse_purchase(const boost::json::value& body);
[[nodiscard]] commands::import_instance parse_import(const boost::json::value& body);

/// `action` is the API name (deploy, stop, enable, renew, unsubscribe, force-delete, delete,
/// change-config, auto-renew); an unknown action is 404 not_found. The body may be empty for
/// actions without fields. (add-funds has a route of its own: it pays into the account, with
/// the body of `parse_funds`.)
[[nodiscard]] commands::command parse_action(std::string_view action, const http::request_context& ctx);

/// `{"name": "…"}` for topics and groups.
[[nodiscard]] std::string parse_name(const boost::json::value& body);

struct open_account_body {
    std::string account_id;
    std::string currency;
};
[[nodiscard]] open_account_body parse_open_account(const boost::json::value& body);
[[nodiscard]] commands::add_funds parse_funds(const boost::json::value& body);
[[nodiscard]] commands::charge parse_charge(const boost::json::value& body);
/// `POST /v1/instances/{id}/usage` (issue 15): `{"record_id", "metric", "quantity", "start",
/// "end"}`. A quantity that is a number but not an int64 integer (1.5, 1e30) is 422 `quantity`.
[[nodiscard]] commands::record_usage parse_usage(const boost::json::value& body);

} // namespace mqledger::api
