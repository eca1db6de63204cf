#include "channel.h"

#include <chrono>
#include <cerrno>
#include <cstring>

#ifndef _WIN32
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

#include "args.h"

namespace hsd {

namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kTimeout = "HSD_CHANNEL_TIMEOUT";
constexpr const char* kClosed = "HSD_CHANNEL_CLOSED";
constexpr const char* kBroken = "HSD_CHANNEL_BROKEN";
constexpr const char* kIo = "HSD_CHANNEL_IO";
constexpr size_t kMaxFrame = size_t(1) << 30;  // far above any answer (rows x vocabulary floats)

// A deadline, or none (timeoutMs <= 0).
struct Deadline {
  bool set = false;
  Clock::time_point at;
  static Deadline in(double timeoutMs) {
    Deadline d;
    if (timeoutMs > 0) {
      d.set = true;
      d.at = Clock::now() + std::chrono::microseconds(static_cast<int64_t>(timeoutMs * 1000));
    }
    return d;
  }
  // Milliseconds for poll(): -1 without a deadline, 0 once it passed.
  int pollMs() const {
    if (!set) return -1;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(at - Clock::now()).count();
    return left <= 0 ? 0 : static_cast<int>(left < 1 << 30 ? left + 1 : 1 << 30);
  }
};

bool fail(ChannelResult& r, const char* code, std::string message) {
  r.code = code;
  r.message = std::move(message);
  return false;
}

#ifndef _WIN32
bool waitFor(int fd, short events, const Deadline& d, ChannelResult& r) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, d.pollMs());
    if (rc > 0) return true;  // ready, or POLLHUP/POLLERR: the next send/recv says which
    if (rc == 0) return fail(r, kTimeout, "no answer within the time limit");
    if (errno != EINTR) return fail(r, kIo, std::string("poll: ") + std::strerror(errno));
  }
}

bool closedOrIo(ChannelResult& r, const char* what) {
  if (errno == EPIPE || errno == ECONNRESET) return fail(r, kClosed, "the other end closed the channel");
  return fail(r, kIo, std::string(what) + ": " + std::strerror(errno));
}

bool sendAll(int fd, const uint8_t* p, size_t n, const Deadline& d, ChannelResult& r) {
  while (n > 0) {
    const ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k > 0) {
      p += k;
      n -= static_cast<size_t>(k);
    } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!waitFor(fd, POLLOUT, d, r)) return false;
    } else if (k < 0 && errno == EINTR) {
      continue;
    } else {
      return closedOrIo(r, "send");
    }
  }
  return true;
}

bool recvAll(int fd, uint8_t* p, size_t n, const Deadline& d, ChannelResult& r) {
  while (n > 0) {
    const ssize_t k = ::recv(fd, p, n, MSG_DONTWAIT);
    if (k > 0) {
      p += k;
      n -= static_cast<size_t>(k);
    } else if (k == 0) {
      return fail(r, kClosed, "the other end closed the channel");
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!waitFor(fd, POLLIN, d, r)) return false;
    } else if (errno != EINTR) {
      return closedOrIo(r, "recv");
    }
  }
  return true;
}

bool sendFrame(int fd, const uint8_t* data, size_t size, const Deadline& d, ChannelResult& r) {
  if (size > kMaxFrame) return fail(r, kIo, "frame of " + std::to_string(size) + " bytes is too large");
  uint8_t header[4];
  for (int i = 0; i < 4; i++) header[i] = static_cast<uint8_t>(size >> (8 * i));
  return sendAll(fd, header, 4, d, r) && sendAll(fd, data, size, d, r);
}

bool receiveFrame(int fd, std::vector<uint8_t>& out, const Deadline& d, ChannelResult& r) {
  uint8_t header[4];
  if (!recvAll(fd, header, 4, d, r)) return false;
  size_t size = 0;
  for (int i = 0; i < 4; i++) size |= static_cast<size_t>(header[i]) << (8 * i);
  if (size > kMaxFrame) return fail(r, kIo, "frame of " + std::to_string(size) + " bytes is too large (a corrupt stream?)");
  out.resize(size);
  return recvAll(fd, out.data(), size, d, r);
}
#endif

// One request and its answer, under the channel's lock; any failure breaks the channel.
void exchange(ChannelState& s, const uint8_t* data, size_t size, double timeoutMs, ChannelResult& r) {
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.broken.empty()) {
    fail(r, kBroken, s.broken);
    return;
  }
#ifdef _WIN32
  fail(r, kIo, "hsd's child-process channel is not implemented on Windows");
#else
  const Deadline d = Deadline::in(timeoutMs);
  if (sendFrame(s.fd, data, size, d, r) && receiveFrame(s.fd, r.answer, d, r)) return;
  s.broken = r.message;
#endif
}

Napi::Error channelError(Napi::Env env, const ChannelResult& r) {
  Napi::Error e = Napi::Error::New(env, r.message);
  e.Set("code", Napi::String::New(env, r.code));
  return e;
}

Napi::ArrayBuffer toArrayBuffer(Napi::Env env, const std::vector<uint8_t>& bytes) {
  Napi::ArrayBuffer b = Napi::ArrayBuffer::New(env, bytes.size());
  if (!bytes.empty()) std::memcpy(b.Data(), bytes.data(), bytes.size());
  return b;
}

// The request bytes of call(bytes, …) / send(bytes): a Uint8Array.
Napi::Uint8Array bytesArg(const Napi::CallbackInfo& info, const char* what) {
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(info.Env(), std::string(what) + ": bytes must be a Uint8Array");
  return info[0].As<Napi::Uint8Array>();
}

double timeoutArg(const Napi::CallbackInfo& info) {
  if (info.Length() < 2 || !info[1].IsNumber()) throw Napi::TypeError::New(info.Env(), "timeoutMs must be a number");
  return info[1].As<Napi::Number>().DoubleValue();
}

class ExchangeWorker : public Napi::AsyncWorker {
 public:
  ExchangeWorker(Napi::Env env, std::shared_ptr<ChannelState> s, Napi::Uint8Array bytes, double timeoutMs)
      : Napi::AsyncWorker(env, "hsd:channel"),
        deferred_(Napi::Promise::Deferred::New(env)),
        state_(std::move(s)),
        request_(bytes.Data(), bytes.Data() + bytes.ByteLength()),
        timeoutMs_(timeoutMs) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override { exchange(*state_, request_.data(), request_.size(), timeoutMs_, result_); }
  void OnOK() override {
    if (result_.code.empty()) deferred_.Resolve(toArrayBuffer(Env(), result_.answer));
    else deferred_.Reject(channelError(Env(), result_).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<ChannelState> state_;
  std::vector<uint8_t> request_;  // a copy: the caller may reuse its buffer at once
  double timeoutMs_;
  ChannelResult result_;
};

}  // namespace

ChannelState::~ChannelState() {
#ifndef _WIN32
  if (fd >= 0) ::close(fd);
#endif
}

Napi::Function AddonChannel::DefineClass(Napi::Env env) {
  return ObjectWrap<AddonChannel>::DefineClass(env, "Channel",
                                               {
                                                   InstanceMethod("call", &AddonChannel::Call),
                                                   InstanceMethod("callAsync", &AddonChannel::CallAsync),
                                                   InstanceMethod("receive", &AddonChannel::Receive),
                                                   InstanceMethod("send", &AddonChannel::Send),
                                                   InstanceMethod("close", &AddonChannel::Close),
                                               });
}

Napi::Value AddonChannel::SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#ifdef _WIN32
  throw Napi::Error::New(env, "socketPair() is not implemented on Windows");
#else
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw Napi::Error::New(env, std::string("socketpair: ") + std::strerror(errno));
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, fds[0]);
  a.Set(1u, fds[1]);
  return a;
#endif
}

AddonChannel::AddonChannel(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AddonChannel>(info) {
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "new Channel(fd): fd must be a number");
  state_ = std::make_shared<ChannelState>();
  state_->fd = static_cast<int>(integerValue(info.Env(), info[0], "fd", 0, INT32_MAX));
}

ChannelState& AddonChannel::open(Napi::Env env) {
  if (!state_) throw Napi::Error::New(env, "the channel was closed");
  return *state_;
}

Napi::Value AddonChannel::Call(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ChannelState& s = open(env);
  Napi::Uint8Array bytes = bytesArg(info, "call");
  ChannelResult r;
  exchange(s, bytes.Data(), bytes.ByteLength(), timeoutArg(info), r);
  if (!r.code.empty()) throw channelError(env, r);
  return toArrayBuffer(env, r.answer);
}

Napi::Value AddonChannel::CallAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  open(env);
  auto* w = new ExchangeWorker(env, state_, bytesArg(info, "callAsync"), timeoutArg(info));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value AddonChannel::Receive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ChannelState& s = open(env);
  ChannelResult r;
#ifdef _WIN32
  fail(r, kIo, "hsd's child-process channel is not implemented on Windows");
#else
  if (receiveFrame(s.fd, r.answer, Deadline{}, r)) return toArrayBuffer(env, r.answer);
#endif
  if (r.code == kClosed) return env.Null();
  throw channelError(env, r);
}

Napi::Value AddonChannel::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ChannelState& s = open(env);
  Napi::Uint8Array bytes = bytesArg(info, "send");
  ChannelResult r;
#ifdef _WIN32
  fail(r, kIo, "hsd's child-process channel is not implemented on Windows");
#else
  if (sendFrame(s.fd, bytes.Data(), bytes.ByteLength(), Deadline{}, r)) return env.Undefined();
#endif
  throw channelError(env, r);
}

Napi::Value AddonChannel::Close(const Napi::CallbackInfo& info) {
  state_.reset();  // the fd closes when no exchange in flight holds the state any more
  return info.Env().Undefined();
}

}  // namespace hsd
