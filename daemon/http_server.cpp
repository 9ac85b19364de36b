#include "daemon/http_server.h"

#include "daemon/logging.h"
#include "daemon/stopwatch.h"
#include "daemon/version.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <mutex>
#include <unordered_map>

namespace mqledger::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

// After a refused request (413 …) the client may still be sending its body; closing with
// unread data would make the kernel send RST, which can destroy our answer in flight. So the
// connection lingers, reading and discarding, for at most this long.
constexpr std::chrono::seconds linger_timeout{2};

// One place for I/O errors (STYLE.md: one fail(ec, what)). Peers vanishing is routine.
void fail(beast::error_code ec, const char* what) {
    if (ec == net::error::operation_aborted || ec == beast::error::timeout || ec == net::error::eof ||
        ec == bhttp::error::end_of_stream)
        return;
    log_line(log_level::debug, "connection error", {{"op", what}, {"error", ec.message()}});
}

bool is_http_parse_error(beast::error_code ec) {
    return ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category();
}

class session;

} // namespace

struct server_state : std::enable_shared_from_this<server_state> {
    server_state(net::io_context& ioc_, server_options o, request_handler h,
          std::function<std::string(std::string_view, std::string_view)> label, response_observer obs)
        : ioc(ioc_), opts(std::move(o)), handler(std::move(h)), route_label(std::move(label)),
          observer(std::move(obs)), acceptor(net::make_strand(ioc_)), accept_retry(acceptor.get_executor()) {}

    void do_accept();
    void on_accept(beast::error_code ec, tcp::socket socket);
    void add(const std::shared_ptr<session>& s);
    void remove(session* s);

    net::io_context& ioc;
    const server_options opts;
    const request_handler handler;
    const std::function<std::string(std::string_view, std::string_view)> route_label;
    const response_observer observer;
    tcp::acceptor acceptor;   // used only on its strand
    net::steady_timer accept_retry;   // backs off after a failed accept, on the acceptor's strand
    std::atomic<bool> stopping{false};

    mutable std::mutex mutex;   // guards sessions and on_drained
    std::unordered_map<session*, std::weak_ptr<session>> sessions;
    std::function<void()> on_drained;
};

namespace {

class session : public std::enable_shared_from_this<session> {
public:
    session(tcp::socket&& socket, std::shared_ptr<server_state> server)
        : stream_(std::move(socket)), server_(std::move(server)) {}

    ~session() { server_->remove(this); }

    void run() { net::dispatch(stream_.get_executor(), beast::bind_front_handler(&session::do_read, shared_from_this())); }

    /// Graceful stop: an idle connection closes now; a request in flight is answered first.
    void stop() {
        net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
            self->stopping_ = true;
            if (self->phase_ == phase::idle) self->stream_.cancel();
        });
    }

private:
    enum class phase { idle, reading, handling, writing, closing };

    void do_read() {
        if (stopping_ || server_->stopping) return do_close();
        parser_.emplace();
        parser_->body_limit(server_->opts.body_limit);
        parser_->header_limit(static_cast<std::uint32_t>(server_->opts.header_limit));
        if (buffer_.size() > 0) return do_read_request();   // a pipelined request is waiting
        // Waiting for the next request is "idle" (idle timeout, closed on shutdown); once its
        // first bytes arrive the whole request must come within the read timeout.
        phase_ = phase::idle;
        stream_.expires_after(server_->opts.idle_timeout);
        stream_.async_read_some(buffer_.prepare(4096),
                                beast::bind_front_handler(&session::on_first_bytes, shared_from_this()));
    }

    void on_first_bytes(beast::error_code ec, std::size_t n) {
        if (ec) {
            fail(ec, "read");
            return do_close();
        }
        buffer_.commit(n);
        do_read_request();
    }

    void do_read_request() {
        phase_ = phase::reading;
        stream_.expires_after(server_->opts.read_timeout);
        bhttp::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&session::on_read, shared_from_this()));
    }

    void on_read(beast::error_code ec, std::size_t) {
        if (ec == bhttp::error::end_of_stream) return do_close();
        if (ec == bhttp::error::body_limit)
            return reject(413, "too_large",
                          "the request body is larger than the limit of " + std::to_string(server_->opts.body_limit) +
                              " bytes");
        if (ec == bhttp::error::header_limit)
            return reject(431, "too_large",
                          "the request header is larger than the limit of " +
                              std::to_string(server_->opts.header_limit) + " bytes");
        if (ec && is_http_parse_error(ec)) return reject(400, "malformed", "not a valid HTTP request: " + ec.message());
        if (ec) {
            fail(ec, "read");
            return do_close();
        }

        phase_ = phase::handling;
        auto msg = parser_->release();
        keep_alive_ = msg.keep_alive();
        version_ = msg.version();
        request req;
        req.method = std::string(msg.method_string());
        req.target = std::string(msg.target());
        for (const auto& f : msg) req.headers.push_back({std::string(f.name_string()), std::string(f.value())});
        req.body = std::move(msg.body());
        method_ = req.method;
        target_ = req.target;
        timer_.reset();
        stream_.expires_never();

        // `done` may be called from any thread; the answer is written on this connection's strand.
        auto answered = std::make_shared<std::atomic<bool>>(false);
        auto done = [self = shared_from_this(), answered](response&& r) {
            if (answered->exchange(true)) return;
            net::post(self->stream_.get_executor(),
                      [self, res = std::move(r)]() mutable { self->send(std::move(res)); });
        };
        try {
            server_->handler(std::move(req), done);
        } catch (const std::exception& e) {
            // The handler contract is not to throw; keep the daemon alive if one does.
            auto r = error_response(500, "internal", "internal error");
            r.internal_error = e.what();
            done(std::move(r));
        }
    }

    void reject(int status, std::string_view code, const std::string& message) {
        keep_alive_ = false;
        linger_ = true;
        method_.clear();
        target_.clear();
        // Beast reports body_limit from a Content-Length before it marks the header done, but the
        // fields are parsed by then; for other errors only a finished header is trustworthy.
        if (parser_->is_header_done() || status == 413) {
            method_ = std::string(parser_->get().method_string());
            target_ = std::string(parser_->get().target());
            version_ = parser_->get().version();
        }
        auto r = error_response(status, code, message);
        r.route = method_.empty() ? "unmatched" : server_->route_label(method_, target_);
        timer_.reset();
        send(std::move(r));
    }

    void send(response r) {
        phase_ = phase::writing;
        auto res = std::make_unique<bhttp::response<bhttp::string_body>>(static_cast<bhttp::status>(r.status), version_);
        res->set(bhttp::field::server, std::string("mqledger/") + version());
        res->set(bhttp::field::content_type, r.content_type);
        for (const auto& h : r.headers) res->set(h.name, h.value);
        res->body() = std::move(r.body);
        const bool keep = keep_alive_ && !linger_ && !stopping_ && !server_->stopping;
        res->keep_alive(keep);
        res->prepare_payload();
        r.body.clear();
        answered_ = std::move(r);
        res_ = std::move(res);
        stream_.expires_after(server_->opts.read_timeout);
        bhttp::async_write(stream_, *res_, beast::bind_front_handler(&session::on_write, shared_from_this(), keep));
    }

    void on_write(bool keep, beast::error_code ec, std::size_t bytes) {
        if (server_->observer) server_->observer(method_, target_, answered_, timer_.seconds(), bytes);
        res_.reset();
        if (ec) {
            fail(ec, "write");
            return do_close();
        }
        if (linger_) return do_linger();
        if (!keep) return do_close();
        do_read();
    }

    void do_linger() {
        phase_ = phase::closing;
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        stream_.expires_after(linger_timeout);
        drain();
    }

    void drain() {
        stream_.async_read_some(net::buffer(drain_buffer_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (!ec) self->drain();   // until EOF, an error or the linger timeout
        });
    }

    void do_close() {
        phase_ = phase::closing;
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        // No operation is pending any more: the session is destroyed, closing the socket.
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
    std::unique_ptr<bhttp::response<bhttp::string_body>> res_;   // alive while being written
    std::shared_ptr<server_state> server_;
    phase phase_ = phase::idle;
    bool stopping_ = false;
    bool keep_alive_ = false;
    bool linger_ = false;
    unsigned version_ = 11;
    std::string method_, target_;
    response answered_;   // what was sent, without its body: for the observer
    stopwatch timer_;
    std::array<char, 4096> drain_buffer_{};
};

} // namespace

void server_state::do_accept() {
    acceptor.async_accept(net::make_strand(ioc), beast::bind_front_handler(&server_state::on_accept, shared_from_this()));
}

void server_state::on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec) {
        if (ec == net::error::operation_aborted) return;
        fail(ec, "accept");
        // EMFILE/ENFILE leave the connection in the backlog, so accepting again at once fails
        // again at once: a busy loop. Wait a little for descriptors to be freed.
        accept_retry.expires_after(std::chrono::milliseconds(100));
        accept_retry.async_wait([self = shared_from_this()](beast::error_code) {
            if (!self->stopping && self->acceptor.is_open()) self->do_accept();
        });
        return;
    }
    if (!stopping) {
        auto s = std::make_shared<session>(std::move(socket), shared_from_this());
        add(s);
        s->run();
    }
    if (!stopping && acceptor.is_open()) do_accept();
}

void server_state::add(const std::shared_ptr<session>& s) {
    std::lock_guard lock(mutex);
    sessions.emplace(s.get(), s);
}

void server_state::remove(session* s) {
    std::function<void()> drained;
    {
        std::lock_guard lock(mutex);
        sessions.erase(s);
        if (stopping && sessions.empty()) drained = std::exchange(on_drained, nullptr);
    }
    if (drained) net::post(ioc, std::move(drained));
}

request_handler routed(const router& r) {
    return [&r](request&& req, std::function<void(response&&)> done) { r.handle(req, std::move(done)); };
}

server::server(net::io_context& ioc, server_options options, request_handler handler,
               std::function<std::string(std::string_view, std::string_view)> route_label,
               response_observer observer)
    : state_(std::make_shared<server_state>(ioc, std::move(options), std::move(handler), std::move(route_label),
                                     std::move(observer))) {}

server::~server() {
    // The io_context may still destroy sessions after this; they must not call back into serve().
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
    state_->on_drained = nullptr;
}

std::uint16_t server::start() {
    const auto& l = state_->opts.listen;
    const std::string where = l.host.find(':') != std::string::npos ? "[" + l.host + "]:" + std::to_string(l.port)
                                                                     : l.host + ":" + std::to_string(l.port);
    beast::error_code ec;
    const auto address = net::ip::make_address(l.host == "localhost" ? "127.0.0.1" : l.host, ec);
    if (ec) throw std::runtime_error("cannot listen on " + where + ": " + ec.message());
    const tcp::endpoint endpoint(address, l.port);
    auto& acceptor = state_->acceptor;
    auto check = [&](const char* what) {
        if (ec) throw std::runtime_error("cannot listen on " + where + ": " + what + ": " + ec.message());
    };
    acceptor.open(endpoint.protocol(), ec);
    check("open");
    acceptor.set_option(net::socket_base::reuse_address(true), ec);
    check("set_option");
    acceptor.bind(endpoint, ec);
    check("bind");
    acceptor.listen(net::socket_base::max_listen_connections, ec);
    check("listen");
    const auto port = acceptor.local_endpoint().port();
    net::dispatch(acceptor.get_executor(), [s = state_] { s->do_accept(); });
    return port;
}

void server::stop(std::function<void()> on_drained) {
    net::post(state_->acceptor.get_executor(), [s = state_, fn = std::move(on_drained)]() mutable {
        {
            std::lock_guard lock(s->mutex);
            if (s->stopping) return;
            s->stopping = true;
            s->on_drained = std::move(fn);
        }
        beast::error_code ec;
        s->acceptor.close(ec);
        std::vector<std::shared_ptr<session>> live;
        {
            std::lock_guard lock(s->mutex);
            for (auto& [ptr, weak] : s->sessions)
                if (auto strong = weak.lock()) live.push_back(std::move(strong));
        }
        for (auto& l : live) l->stop();
        live.clear();   // may destroy sessions: outside the lock
        std::function<void()> drained;
        {
            std::lock_guard lock(s->mutex);
            if (s->sessions.empty()) drained = std::exchange(s->on_drained, nullptr);
        }
        if (drained) drained();
    });
}

std::size_t server::connections() const {
    std::lock_guard lock(state_->mutex);
    return state_->sessions.size();
}

} // namespace mqledger::http
