// Channel: a framed, blocking byte channel over one end of a Unix socket pair, with deadlines.
//
// hsd runs models on RPC devices in a child process (src/rpc/host.ts): ggml-rpc ends its process on any network
// fault, and that process must not be the caller's. The caller's side of the link has to answer synchronously
// (the engine and the calibration call evaluateSync) and within a bounded time (a server that stops answering
// must not hang the caller), which Node's streams cannot do; so the link is this small class: a request is one
// frame (4-byte little-endian length, then the bytes), the answer is one frame, and every call has a deadline.
// What the bytes mean is src/rpc/protocol.ts's business.
//
// JS:
//   socketPair() -> [fd, fd]                 two connected ends (close-on-exec; a child gets one as an inherited fd)
//   new Channel(fd)                          owns fd (closed by close() or when collected)
//   channel.call(bytes, timeoutMs) -> ArrayBuffer           send a frame, wait for the answer (this thread)
//   channel.callAsync(bytes, timeoutMs) -> Promise<ArrayBuffer>   the same on a worker thread
//   channel.receive() -> ArrayBuffer | null  the next frame, no deadline; null when the other end closed (child)
//   channel.send(bytes)                      one frame (child)
//   channel.close()
// Errors carry a code: HSD_CHANNEL_TIMEOUT (no answer by the deadline: the channel is then broken, since a late
// answer would be read as the next one's), HSD_CHANNEL_CLOSED (the other end closed: the child ended),
// HSD_CHANNEL_BROKEN (an earlier call failed), HSD_CHANNEL_IO (any other socket error).
#pragma once
#include <napi.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace hsd {

struct ChannelState {
  int fd = -1;
  std::mutex mutex;        // one exchange at a time (a sync call waits for an async one in flight)
  std::string broken;      // why the channel can no longer be used; "" while it can
  ~ChannelState();
};

// What one exchange came to: "" and the answer, or a code and a message.
struct ChannelResult {
  std::string code, message;
  std::vector<uint8_t> answer;
};

class AddonChannel : public Napi::ObjectWrap<AddonChannel> {
 public:
  static Napi::Function DefineClass(Napi::Env env);
  static Napi::Value SocketPair(const Napi::CallbackInfo& info);
  explicit AddonChannel(const Napi::CallbackInfo& info);

 private:
  ChannelState& open(Napi::Env env);
  Napi::Value Call(const Napi::CallbackInfo& info);
  Napi::Value CallAsync(const Napi::CallbackInfo& info);
  Napi::Value Receive(const Napi::CallbackInfo& info);
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  std::shared_ptr<ChannelState> state_;
};

}  // namespace hsd
