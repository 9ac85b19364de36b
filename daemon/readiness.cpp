#include "daemon/readiness.h"

#include <condition_variable>
#include <mutex>
#include <thread>

namespace mqledger {

// Owned jointly by the monitor and its thread, so the thread may outlive a stop() that gave up
// waiting for it.
struct readiness_monitor::shared {
    probe_fn probe;
    result_fn on_result;
    std::chrono::milliseconds interval;
    std::mutex mutex;
    std::condition_variable wake;
    bool stopping = false;
    bool finished = false;
    std::optional<store::readiness> last;

    void loop() {
        std::unique_lock lock(mutex);
        while (!stopping) {
            lock.unlock();
            const auto r = probe();   // check_ready never throws
            lock.lock();
            if (stopping) break;
            last = r;
            // Under the lock: stop() cannot return while the callback runs, so the callback may
            // use objects that die right after stop().
            if (on_result) on_result(r);
            wake.wait_for(lock, interval, [this] { return stopping; });
        }
        finished = true;
        wake.notify_all();
    }
};

readiness_monitor::readiness_monitor(probe_fn probe, result_fn on_result, std::chrono::milliseconds interval)
    : shared_(std::make_shared<shared>()) {
    shared_->probe = std::move(probe);
    shared_->on_result = std::move(on_result);
    shared_->interval = interval;
}

readiness_monitor::~readiness_monitor() { stop(); }

void readiness_monitor::start() {
    started_ = true;
    std::thread([s = shared_] { s->loop(); }).detach();
}

void readiness_monitor::stop(std::chrono::milliseconds patience) {
    std::unique_lock lock(shared_->mutex);
    shared_->stopping = true;
    shared_->wake.notify_all();
    if (started_) shared_->wake.wait_for(lock, patience, [this] { return shared_->finished; });
}

std::optional<store::readiness> readiness_monitor::current() const {
    std::lock_guard lock(shared_->mutex);
    return shared_->last;
}

} // namespace mqledger
