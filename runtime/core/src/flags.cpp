#include <rankflow/core/error.hpp>
#include <rankflow/core/flags.hpp>

#include <algorithm>
#include <charconv>
#include <cstdlib>

namespace rankflow {

namespace {

log_level parse_level(std::string_view flag, std::string_view v) {
  if (v == "error") return log_level::error;
  if (v == "warn" || v == "warning") return log_level::warn;
  if (v == "info") return log_level::info;
  if (v == "debug") return log_level::debug;
  throw usage_error(std::string(flag) + " expects one of error|warn|info|debug, got '" + std::string(v) + "'");
}

const flags::flag* find(const flags::table& t, std::string_view name) {
  for (const auto& f : t)
    if (name == f.name) return &f;
  return nullptr;
}

}  // namespace

namespace flags {

std::size_t count(std::string_view flag, std::string_view v, std::size_t min) {
  std::size_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc{} || p != v.data() + v.size() || out < min) {
    throw usage_error(std::string(flag) + " expects a whole number >= " + std::to_string(min) + ", got '" +
                      std::string(v) + "'");
  }
  return out;
}

double seconds(std::string_view flag, std::string_view v) {
  char* end = nullptr;
  std::string s(v);
  double d = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !(d > 0)) {
    throw usage_error(std::string(flag) + " expects a positive number of seconds, got '" + s + "'");
  }
  return d;
}

unsigned micros(std::string_view flag, std::string_view v) {
  return static_cast<unsigned>(std::min<std::size_t>(count(flag, v, 0), 10'000'000));
}

table core_table(core_flags& c) {
  return {
      {"log-level", "RANKFLOW_LOG_LEVEL", "LEVEL", "error|warn|info|debug (default info)",
       [&c](std::string_view f, std::string_view v) { c.level = parse_level(f, v); }},
      {"segment-bytes", "RANKFLOW_SEGMENT_BYTES", "BYTES",
       "largest single MPI message; larger ones are split (default 1 GiB)",
       [&c](std::string_view f, std::string_view v) { c.segment_bytes = count(f, v, 64); }},
      {"spin-us", "RANKFLOW_SPIN_US", "MICROSECONDS",
       "an idle rank polls (yielding the CPU) this long before it sleeps between polls; 0: sleep at once "
       "(default 200)",
       [&c](std::string_view f, std::string_view v) { c.spin_us = micros(f, v); }},
      {"run-name", "RANKFLOW_RUN_NAME", "NAME", "name shown in log lines (default: the program name)",
       [&c](std::string_view, std::string_view v) { c.run_name = std::string(v); }},
  };
}

bool parse(const table& t, const std::vector<std::string>& args, std::vector<std::string>* rest) {
  for (const auto& f : t) {
    if (const char* v = std::getenv(f.env); v && *v) f.apply(f.env, v);
  }
  bool help = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    if (a == "--help" || a == "-h") {
      help = true;
      if (rest) rest->push_back(args[i]);  // the program may print its own help too
      continue;
    }
    if (a.size() > 2 && a.substr(0, 2) == "--") {
      std::string_view body = a.substr(2);
      std::string_view name = body.substr(0, body.find('='));
      if (const flag* f = find(t, name)) {
        std::string flag = "--" + std::string(name);
        if (body.size() > name.size()) {
          f->apply(flag, body.substr(name.size() + 1));
        } else if (f->implicit && !(i + 1 < args.size() && f->takes(args[i + 1]))) {
          f->apply(flag, f->implicit);
        } else if (i + 1 < args.size()) {
          f->apply(flag, args[++i]);
        } else {
          throw usage_error(flag + " needs a value (" + f->value + ")");
        }
        continue;
      }
    }
    if (rest) rest->push_back(args[i]);
  }
  return help;
}

void keep_only(int& argc, char** argv, const std::vector<std::string>& rest) {
  int out = 1;
  std::size_t next = 0;
  for (int i = 1; i < argc && next < rest.size(); ++i) {
    if (rest[next] == argv[i]) {
      argv[out++] = argv[i];
      ++next;
    }
  }
  for (int i = out; i < argc; ++i) argv[i] = nullptr;
  argc = out;
}

std::string help_lines(const table& t) {
  std::string s;
  for (const auto& f : t) {
    std::string left = std::string("  --") + f.name + " " + f.value;
    left.resize(std::max<std::size_t>(left.size() + 2, 30), ' ');
    s += left + f.help + "  [" + f.env + "]\n";
  }
  return s;
}

}  // namespace flags

const char* to_string(log_level l) noexcept {
  switch (l) {
    case log_level::error:
      return "error";
    case log_level::warn:
      return "warn";
    case log_level::info:
      return "info";
    case log_level::debug:
      return "debug";
  }
  return "?";
}

}  // namespace rankflow
