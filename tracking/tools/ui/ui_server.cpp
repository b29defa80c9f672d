// `rankflow ui FILE... [--port 8080] [--bind 127.0.0.1]`: a local, read-only
// web server for experiment files (docs/ui.md). One page, and the JSON API
// of ui_data.hpp.
#include "ui_commands.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>

#include <pthread.h>
#include <sys/socket.h>

#include <httplib.h>

#include <rankflow/core/error.hpp>

#include "ui_data.hpp"

namespace rankflow::ui {

namespace {

params params_of(const httplib::Request& req) {
  params p;
  for (const auto& [k, v] : req.params) {
    if (p.count(k)) throw http_error(400, "parameter '" + k + "' given twice");
    if (v.find('\0') != std::string::npos) throw http_error(400, "parameter '" + k + "' holds a NUL byte");
    p[k] = v;
  }
  return p;
}

void send_json(httplib::Response& res, const json& j) {
  // Text that is not UTF-8 (a string field cannot hold it, but a file name
  // might) is replaced, never a reason to fail the whole answer.
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json; charset=utf-8");
  res.set_header("Cache-Control", "no-store");
}

void send_error(httplib::Response& res, int status, const std::string& why) {
  res.status = status;
  send_json(res, json{{"error", why}});
}

// Runs one API handler: a refusal becomes its 4xx, a file that cannot be
// read (damaged, replaced mid-read) a 500 with the reason; never a crash.
template <class Handler>
httplib::Server::Handler api(Handler&& h) {
  return [h = std::forward<Handler>(h)](const httplib::Request& req, httplib::Response& res) {
    try {
      h(params_of(req), res);
    } catch (const http_error& e) {
      send_error(res, e.status, e.what());
    } catch (const rankflow::usage_error& e) {
      send_error(res, 404, e.what());
    } catch (const std::exception& e) {
      send_error(res, 500, std::string("reading the experiment failed: ") + e.what());
    }
  };
}

std::string attachment_name(const std::string& name) {
  std::string safe;
  for (const unsigned char c : name) safe += std::isalnum(c) || c == '.' || c == '-' || c == '_' ? static_cast<char>(c) : '_';
  return safe.empty() ? "download" : safe;
}

}  // namespace

int cmd_ui(const std::vector<std::string>& files, int port, const std::string& bind) {
  for (const auto& f : files) {
    if (!tracking::check_file(f)) {
      throw usage_error("'" + f + "' is not an experiment file (it does not exist): pass the path of one as FILE");
    }
  }
  experiments exps(files);
  httplib::Server srv;
  const bool local = bind == "127.0.0.1" || bind == "localhost" || bind == "::1";
  srv.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(page_html(), "text/html; charset=utf-8");
    // The page loads nothing from elsewhere; the browser is told so too.
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                   "connect-src 'self'; img-src 'self' data:");
    res.set_header("X-Content-Type-Options", "nosniff");
  });
  srv.Get("/favicon.ico", [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
  srv.Get("/api/experiments", api([&](const params&, httplib::Response& res) { send_json(res, exps.list()); }));
  srv.Get("/api/runs", api([&](const params& p, httplib::Response& res) { send_json(res, exps.runs(p)); }));
  srv.Get("/api/sweeps", api([&](const params& p, httplib::Response& res) { send_json(res, exps.sweeps(p)); }));
  srv.Get("/api/run", api([&](const params& p, httplib::Response& res) { send_json(res, exps.run(p)); }));
  srv.Get("/api/series", api([&](const params& p, httplib::Response& res) { send_json(res, exps.series(p)); }));
  srv.Get("/api/timeline", api([&](const params& p, httplib::Response& res) { send_json(res, exps.timeline(p)); }));
  srv.Get("/api/compare", api([&](const params& p, httplib::Response& res) { send_json(res, exps.compare(p)); }));
  srv.Get("/api/file", api([&](const params& p, httplib::Response& res) {
            auto [bytes, name] = exps.file(p);
            res.set_header("Content-Disposition", "attachment; filename=\"" + attachment_name(name) + "\"");
            res.set_content(std::move(bytes), "application/octet-stream");
          }));
  // Everything else, and methods other than GET: nothing to find here.
  // httplib's own refusals (a URI too long, a bad request) get a JSON body too.
  srv.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) {
      send_error(res, 404, "nothing at " + req.path + " (the page is at /)");
    } else {
      const int s = res.status;
      send_error(res, s,
                 s == 414 || s == 413 ? "the request is too long"
                 : s == 405           ? "only GET is served"
                 : s == 400           ? "a malformed request"
                                      : "HTTP " + std::to_string(s));
    }
  });
  srv.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string why = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      why = e.what();
    } catch (...) {
    }
    send_error(res, 500, why);
  });
  // A client that goes away mid-answer must not kill the server.
  std::signal(SIGPIPE, SIG_IGN);
  // SO_REUSEADDR only: httplib also sets SO_REUSEPORT, with which a second
  // server on the same port starts too and the two share its requests.
  srv.set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  const int bound = port == 0 ? srv.bind_to_any_port(bind) : (srv.bind_to_port(bind, port) ? port : -1);
  if (bound < 0) {
    throw usage_error("cannot listen on " + bind + ":" + std::to_string(port) +
                      " (in use, or not an address of this machine): pass another --port, or --port 0 for any free one");
  }
  if (!local) {
    std::cerr << "WARNING: rankflow ui listens on " << bind << ":" << bound
              << ", not only on this machine: anyone who can reach it can read these experiments. "
                 "Bind to 127.0.0.1 (the default) and use `ssh -L` instead (docs/ui.md).\n";
  }
  std::cout << "rankflow ui: serving " << files.size() << " experiment(s) at http://"
            << (bind.find(':') != std::string::npos ? "[" + bind + "]" : bind) << ":" << bound << "/" << std::endl;
  // SIGINT and SIGTERM stop the server: blocked in every thread (the
  // server's pool inherits the mask) and taken by one that waits for them.
  sigset_t stop_set;
  sigemptyset(&stop_set);
  sigaddset(&stop_set, SIGINT);
  sigaddset(&stop_set, SIGTERM);
  sigaddset(&stop_set, SIGUSR1);  // ours, once the server ended otherwise
  pthread_sigmask(SIG_BLOCK, &stop_set, nullptr);
  std::atomic<bool> ended{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_set, &sig);
    // A signal before the server runs: stop() would find nothing to stop.
    while (sig != SIGUSR1 && !ended && !srv.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    srv.stop();
  });
  // The run indexes are read now, while the browser is still loading the
  // page (an index of 100,000 runs takes ~0.4 s): its first rows come from
  // the cache. Requests meanwhile wait for the same lock.
  std::thread warm([&] {
    try {
      (void)exps.list();
    } catch (const std::exception&) {  // a request will say what is wrong
    }
  });
  const bool ok = srv.listen_after_bind();
  ended = true;
  warm.join();
  pthread_kill(waiter.native_handle(), SIGUSR1);
  waiter.join();
  std::cout << "rankflow ui: stopped" << std::endl;
  return ok ? 0 : 1;
}

}  // namespace rankflow::ui
