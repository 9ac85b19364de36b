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

std::string with_default(const std::string& url, const std::string& key, const std::string& value) {
    // A crude but safe test: a key that appears anywhere (even inside another value) is left
    // alone; the worst case is a missing default, never a changed setting.
    if (url.find(key + "=") != std::string::npos) return url;
    if (url.find("://") != std::string::npos)
        return url + (url.find('?') == std::string::npos ? "?" : "&") + key + "=" + value;
    return url + (url.empty() ? "" : " ") + key + "=" + value;
}

std::string for_daemon(const std::string& url) {
    auto u = with_default(url, "connect_timeout", "5");
    u = with_default(u, "keepalives", "1");
    u = with_default(u, "keepalives_idle", "10");
    u = with_default(u, "keepalives_interval", "5");
    return with_default(u, "keepalives_count", "3");
}

} // namespace mqledger::store
