#include "daemon/state_cache.h"

#include "ledger/events.h"

#include <functional>

namespace mqledger {

namespace {

std::int64_t version_of(const std::variant<instance_state, account_state>& v) {
    return std::visit([](const auto& s) { return s.version; }, v);
}

} // namespace

state_cache::state_cache(std::size_t capacity)
    : capacity_(capacity), per_shard_(capacity == 0 ? 0 : (capacity + shard_count - 1) / shard_count) {}

state_cache::shard& state_cache::shard_of(const std::string& key) {
    return shards_[std::hash<std::string>{}(key) % shard_count];
}

template <typename T>
std::optional<T> state_cache::get(const std::string& key) {
    if (capacity_ == 0) return std::nullopt;
    auto& sh = shard_of(key);
    std::lock_guard lock(sh.mutex);
    const auto it = sh.index.find(key);
    if (it == sh.index.end()) {
        misses_.fetch_add(1, std::memory_order_relaxed);
        return std::nullopt;
    }
    sh.lru.splice(sh.lru.begin(), sh.lru, it->second);
    hits_.fetch_add(1, std::memory_order_relaxed);
    return std::get<T>(it->second->second);
}

std::optional<instance_state> state_cache::instance(const std::string& id) {
    return get<instance_state>(instance_stream(id));
}

std::optional<account_state> state_cache::account(const std::string& id) {
    return get<account_state>(account_stream(id));
}

void state_cache::put(std::string key, value v, std::int64_t version) {
    if (capacity_ == 0) return;
    auto& sh = shard_of(key);
    std::lock_guard lock(sh.mutex);
    if (const auto it = sh.index.find(key); it != sh.index.end()) {
        // Never replace a newer state with an older one (a slow load racing a fresh append).
        if (version_of(it->second->second) > version) return;
        it->second->second = std::move(v);
        sh.lru.splice(sh.lru.begin(), sh.lru, it->second);
        return;
    }
    sh.lru.emplace_front(key, std::move(v));
    sh.index.emplace(std::move(key), sh.lru.begin());
    while (sh.lru.size() > per_shard_) {
        sh.index.erase(sh.lru.back().first);
        sh.lru.pop_back();
    }
}

void state_cache::put(const instance_state& s) {
    if (!s.exists) return;
    put(instance_stream(s.id), s, s.version);
}

void state_cache::put(const std::string& account_id, const account_state& a) {
    if (!a.exists) return;
    put(account_stream(account_id), a, a.version);
}

void state_cache::forget(const std::string& stream) {
    if (capacity_ == 0) return;
    auto& sh = shard_of(stream);
    std::lock_guard lock(sh.mutex);
    if (const auto it = sh.index.find(stream); it != sh.index.end()) {
        sh.lru.erase(it->second);
        sh.index.erase(it);
    }
}

void state_cache::clear() {
    for (auto& sh : shards_) {
        std::lock_guard lock(sh.mutex);
        sh.index.clear();
        sh.lru.clear();
    }
}

state_cache::stats state_cache::statistics() const {
    stats s;
    s.hits = hits_.load(std::memory_order_relaxed);
    s.misses = misses_.load(std::memory_order_relaxed);
    for (const auto& sh : shards_) {
        std::lock_guard lock(sh.mutex);
        s.entries += sh.lru.size();
    }
    return s;
}

} // namespace mqledger
