// llama.cpp's RPC backend (ggml-rpc): the devices of remote rpc-server processes, for a model's layers.
//
// The backend is a ggml plugin (libggml-rpc.so) that only a build with GGML_RPC has (npm run build:llama -- --rpc,
// or --rpc-only next to the prebuilt libraries). Its functions are not in the core libraries, so they are looked
// up through the plugin's registry entry (ggml_backend_reg_get_proc_address), as llama.cpp's own tools do.
//
// Caution: ggml-rpc ends the process (GGML_ABORT) when it cannot connect to a server, when the handshake fails and
// on any socket error later. hsd therefore probes every server first (src/rpc/probe.ts) and runs models on RPC
// devices in a child process of their own (src/rpc/host.ts), so that a failure there cannot take the caller down.
#pragma once
#include <napi.h>


#include <string>
#include <vector>

#include "llama_api.h"

namespace hsd {

// Whether the RPC backend plugin is in ggml's registry (loaded from the library folder or by path).
bool rpcBackendLoaded();

// Connects to the rpc-server at endpoint ("host:port") and appends its devices to `out`. "" on success, else the
// reason (no RPC backend, a server with no device). A server that is not there aborts the process (see above).
std::string appendRpcDevices(const std::string& endpoint, std::vector<ggml_backend_dev_t>& out);

// What a server answered to a connection and the RPC handshake (HELLO), as probeRpcServer found it.
struct RpcProbe {
  // "ok", "version" (it answered with a protocol this llama.cpp does not speak), "refused" (nothing listens on
  // the port), "unreachable" (no route to the host), "resolve" (unknown host name), "connect-timeout",
  // "handshake-timeout" (connected but no answer: a busy server, since rpc-server serves one client at a time, or
  // not an rpc-server), "closed" (the server closed the connection during the handshake: not an rpc-server, or one
  // of another protocol), "error".
  std::string state;
  int major = -1, minor = -1, patch = -1;  // the server's protocol version, when it answered
  std::string detail;                      // the system's words, when there are any
};

// Connects to host:port and does ggml-rpc's handshake the way its client does (a HELLO advertising plain TCP),
// then closes, all within timeoutMs. Never aborts and never blocks longer than the time limit (name resolution
// aside). A successful probe leaves the server ready for the next client.
RpcProbe probeRpcServer(const std::string& host, int port, double timeoutMs);

// rpcAvailable() -> boolean, rpcProtocolVersion() -> "6.0.0", probeRpcServer(host, port, timeoutMs) ->
// Promise<{state, version, detail}> (on a worker thread), probeRpcServerSync(host, port, timeoutMs) -> the same.
void registerRpcFunctions(Napi::Env env, Napi::Object exports);

// The protocol version of the ggml-rpc headers the addon was compiled against: "major.minor.patch".
std::string rpcProtocolVersion();

}  // namespace hsd
