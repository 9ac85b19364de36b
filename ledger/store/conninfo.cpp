#include "ledger/store/conninfo.h"

namespace mqledger::store {

std::string with_database(const std::string& url, const std::string& dbname) {
    const auto scheme = url.find("://");
    if (scheme == std::string::npos) return url + " dbname=" + dbname; // the last keyword wins
    const auto path = url.find('/', scheme + 3);
    const auto query = url.find('?', scheme + 3);
    if (path == std::string::npos || (query != std::string::npos && path > query)) {
        const auto at = query == std::string::npos ? url.size() : query;
        return url.substr(0, at) + "/" + dbname + url.substr(at);
    }
    const auto end = query == std::string::npos ? url.size() : query;
    return url.substr(0, path + 1) + dbname + url.substr(end);
}

} // namespace mqledger::store
