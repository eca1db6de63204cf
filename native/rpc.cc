#include "rpc.h"

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>

#ifndef _WIN32
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

#include "args.h"
#include "ggml-rpc.h"

namespace hsd {

namespace {
// The name ggml-rpc registers under (ggml_backend_rpc_reg_get_name without a server context).
constexpr const char* kRpcRegistry = "RPC";
}  // namespace

bool rpcBackendLoaded() { return api::isOpen() && api::ggml_backend_reg_by_name(kRpcRegistry) != nullptr; }

std::string appendRpcDevices(const std::string& endpoint, std::vector<ggml_backend_dev_t>& out) {
  ggml_backend_reg_t reg = api::isOpen() ? api::ggml_backend_reg_by_name(kRpcRegistry) : nullptr;
  if (reg == nullptr)
    return "this llama.cpp build has no RPC backend (build one with: npm run build:llama -- --rpc)";
  using AddServer = decltype(&::ggml_backend_rpc_add_server);
  auto addServer = reinterpret_cast<AddServer>(api::ggml_backend_reg_get_proc_address(reg, "ggml_backend_rpc_add_server"));
  if (addServer == nullptr) return "the RPC backend does not export ggml_backend_rpc_add_server (another llama.cpp release?)";
  // One registry entry per server, kept by ggml-rpc for the life of the process (a second call returns the same).
  ggml_backend_reg_t server = addServer(endpoint.c_str());
  if (server == nullptr) return "the rpc-server at " + endpoint + " has no device";
  const size_t n = api::ggml_backend_reg_dev_count(server);
  for (size_t i = 0; i < n; i++) out.push_back(api::ggml_backend_reg_dev_get(server, i));
  return "";
}

}  // namespace hsd

// ---------------------------------------------------------------------------------------------------------------
// The probe. Protocol facts used (ggml/src/ggml-rpc/ggml-rpc.cpp of the bundled release): a request is
// | command (1 byte) | size (8 bytes, little-endian) | data |, an answer | size (8 bytes) | data |; HELLO is command
// 14 in every release (a static_assert there); its request carries the client's transport capabilities (24 bytes;
// all zero = plain TCP) and its answer major, minor, patch, one padding byte and the server's 24 capability bytes.
// The client accepts a server of the same major version and a minor version not above its own.

namespace hsd {

std::string rpcProtocolVersion() {
  return std::to_string(RPC_PROTO_MAJOR_VERSION) + "." + std::to_string(RPC_PROTO_MINOR_VERSION) + "." +
         std::to_string(RPC_PROTO_PATCH_VERSION);
}

#ifdef _WIN32
RpcProbe probeRpcServer(const std::string&, int, double) {
  RpcProbe r;
  r.state = "error";
  r.detail = "the RPC probe is not implemented on Windows";
  return r;
}
#else
namespace {

constexpr uint8_t kHelloCommand = 14;
constexpr size_t kCapsSize = 24;
constexpr size_t kHelloAnswerSize = 4 + kCapsSize;

using Clock = std::chrono::steady_clock;

int msLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(left);
}

// Waits for `events` on fd until the deadline: 1 ready, 0 timed out, -1 error.
int waitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, msLeft(deadline));
    if (rc >= 0 || errno != EINTR) return rc > 0 ? 1 : rc;
  }
}

// Sends or receives exactly n bytes before the deadline: "" or the failure state ("handshake-timeout", "closed",
// "error" with errno in detail).
std::string transfer(int fd, uint8_t* p, size_t n, bool sending, Clock::time_point deadline, std::string& detail) {
  while (n > 0) {
    ssize_t k = sending ? ::send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT) : ::recv(fd, p, n, MSG_DONTWAIT);
    if (k > 0) {
      p += k;
      n -= static_cast<size_t>(k);
      continue;
    }
    if (k == 0) return "closed";
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      int w = waitFor(fd, sending ? POLLOUT : POLLIN, deadline);
      if (w == 0) return "handshake-timeout";
      if (w < 0) {
        detail = std::strerror(errno);
        return "error";
      }
      continue;
    }
    if (errno == ECONNRESET || errno == EPIPE) return "closed";
    detail = std::strerror(errno);
    return "error";
  }
  return "";
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

RpcProbe probeRpcServer(const std::string& host, int port, double timeoutMs) {
  RpcProbe r;
  const auto deadline = Clock::now() + std::chrono::microseconds(static_cast<int64_t>(std::max(1.0, timeoutMs) * 1000));
  // IPv4, as ggml-rpc's client resolves (gethostbyname).
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0 || found == nullptr) {
    r.state = "resolve";
    r.detail = rc != 0 ? gai_strerror(rc) : "no IPv4 address";
    return r;
  }
  sockaddr_in addr{};
  std::memcpy(&addr, found->ai_addr, std::min<size_t>(sizeof(addr), found->ai_addrlen));
  ::freeaddrinfo(found);

  Fd s;
  s.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s.fd < 0) {
    r.state = "error";
    r.detail = std::strerror(errno);
    return r;
  }
  int one = 1;
  ::setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int err = 0;
  if (::connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS) {
      err = errno;
    } else {
      int w = waitFor(s.fd, POLLOUT, deadline);
      if (w == 0) {
        r.state = "connect-timeout";
        return r;
      }
      socklen_t len = sizeof(err);
      if (w < 0) err = errno;
      else if (::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    }
  }
  if (err != 0) {
    r.state = err == ECONNREFUSED ? "refused" : (err == EHOSTUNREACH || err == ENETUNREACH) ? "unreachable" : "error";
    r.detail = std::strerror(err);
    return r;
  }

  uint8_t hello[1 + 8 + kCapsSize] = {0};
  hello[0] = kHelloCommand;
  for (int i = 0; i < 8; i++) hello[1 + i] = static_cast<uint8_t>(static_cast<uint64_t>(kCapsSize) >> (8 * i));
  if (std::string st = transfer(s.fd, hello, sizeof(hello), true, deadline, r.detail); !st.empty()) {
    r.state = st;
    return r;
  }
  uint8_t sizeBytes[8];
  if (std::string st = transfer(s.fd, sizeBytes, 8, false, deadline, r.detail); !st.empty()) {
    r.state = st;
    return r;
  }
  uint64_t size = 0;
  for (int i = 0; i < 8; i++) size |= static_cast<uint64_t>(sizeBytes[i]) << (8 * i);
  if (size < 3 || size > 1024) {
    r.state = "closed";
    r.detail = "an answer of " + std::to_string(size) + " bytes to the handshake";
    return r;
  }
  std::vector<uint8_t> answer(size);
  if (std::string st = transfer(s.fd, answer.data(), answer.size(), false, deadline, r.detail); !st.empty()) {
    r.state = st;
    return r;
  }
  r.major = answer[0];
  r.minor = answer[1];
  r.patch = answer[2];
  const bool compatible =
      size == kHelloAnswerSize && r.major == RPC_PROTO_MAJOR_VERSION && r.minor <= RPC_PROTO_MINOR_VERSION;
  r.state = compatible ? "ok" : "version";
  return r;
}
#endif

}  // namespace hsd

// ---------------------------------------------------------------------------------------------------------------
// JS bindings.

namespace hsd {
namespace {

Napi::Object probeObject(Napi::Env env, const RpcProbe& p) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("state", p.state);
  o.Set("version", p.major < 0 ? env.Null() : Napi::String::New(env, std::to_string(p.major) + "." +
                                                                        std::to_string(p.minor) + "." +
                                                                        std::to_string(p.patch)));
  o.Set("detail", p.detail);
  return o;
}

struct ProbeArgs {
  std::string host;
  int port = 0;
  double timeoutMs = 0;
};

ProbeArgs probeArgs(const Napi::CallbackInfo& info) {
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber())
    throw Napi::TypeError::New(info.Env(), "probeRpcServer(host, port, timeoutMs)");
  return {info[0].As<Napi::String>().Utf8Value(), static_cast<int>(integerValue(info.Env(), info[1], "port", 1, 65535)),
          info[2].As<Napi::Number>().DoubleValue()};
}

class ProbeWorker : public Napi::AsyncWorker {
 public:
  ProbeWorker(Napi::Env env, ProbeArgs args)
      : Napi::AsyncWorker(env, "hsd:probeRpcServer"), deferred_(Napi::Promise::Deferred::New(env)), args_(std::move(args)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override { result_ = probeRpcServer(args_.host, args_.port, args_.timeoutMs); }
  void OnOK() override { deferred_.Resolve(probeObject(Env(), result_)); }

 private:
  Napi::Promise::Deferred deferred_;
  ProbeArgs args_;
  RpcProbe result_;
};

Napi::Value ProbeAsync(const Napi::CallbackInfo& info) {
  auto* w = new ProbeWorker(info.Env(), probeArgs(info));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value ProbeSync(const Napi::CallbackInfo& info) {
  ProbeArgs a = probeArgs(info);
  return probeObject(info.Env(), probeRpcServer(a.host, a.port, a.timeoutMs));
}

}  // namespace

void registerRpcFunctions(Napi::Env env, Napi::Object exports) {
  exports.Set("rpcAvailable", Napi::Function::New(
                                  env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                                    return Napi::Boolean::New(info.Env(), rpcBackendLoaded());
                                  },
                                  "rpcAvailable"));
  exports.Set("rpcProtocolVersion", Napi::Function::New(
                                        env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                                          return Napi::String::New(info.Env(), rpcProtocolVersion());
                                        },
                                        "rpcProtocolVersion"));
  exports.Set("probeRpcServer", Napi::Function::New(env, ProbeAsync, "probeRpcServer"));
  exports.Set("probeRpcServerSync", Napi::Function::New(env, ProbeSync, "probeRpcServerSync"));
}

}  // namespace hsd
