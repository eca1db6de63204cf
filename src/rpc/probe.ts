// Checking rpc-servers before hsd hands them to ggml-rpc (which ends the process on a server it cannot reach,
// native/rpc.h), and naming the one that failed after a fault. The probe itself is native (native/rpc.cc): a
// connection and ggml-rpc's handshake within a time limit, on a worker thread or, after a fault in a synchronous
// pass, on the calling thread.
import { RpcServerError } from "../errors.js";
import { loadNative, type RawRpcProbe } from "../native/load.js";
import type { RpcEndpoint } from "./endpoints.js";

/** How long a probe may take: a connection and one small exchange, generous for a slow network. */
export const PROBE_TIMEOUT_MS = 3000;

const SERVER_HINT =
  'start it there (ggml-rpc-server -H <its address> -p <port>; README, "A remote target over RPC") or fix --rpc';

/** What a probe found, in words, or null when the server is fine. `ms`: the probe's time limit. */
export function describeProbe(e: RpcEndpoint, p: RawRpcProbe, ms: number): string | null {
  const ours = loadNative().addon.rpcProtocolVersion();
  const rebuild = "run an rpc-server built from hsd's llama.cpp (npm run build:llama -- --rpc)";
  switch (p.state) {
    case "ok":
      return null;
    case "version":
      return `rpc-server ${e.label} speaks RPC protocol ${p.version}, but hsd's llama.cpp speaks ${ours}: ${rebuild}`;
    case "refused":
      return `rpc-server ${e.label}: connection refused (nothing listens on port ${e.port} of ${e.host}): ${SERVER_HINT}`;
    case "unreachable":
      return `rpc-server ${e.label}: ${e.host} is unreachable (${p.detail}): check the address and the network`;
    case "resolve":
      return `rpc-server ${e.label}: cannot resolve the host name ${e.host} (${p.detail})`;
    case "connect-timeout":
      return `rpc-server ${e.label} did not answer a connection within ${ms} ms (host down, or a firewall dropping packets)`;
    case "handshake-timeout":
      return (
        `rpc-server ${e.label} accepted a connection but did not answer the RPC handshake within ${ms} ms: an ` +
        "rpc-server serves one client at a time, so another program (another hsd, llama.cpp) may be using it; or " +
        "it is stopped, or this port is not an rpc-server"
      );
    case "closed":
      return (
        `rpc-server ${e.label} closed the connection during the RPC handshake: not an rpc-server, or one of ` +
        `another llama.cpp release (hsd speaks RPC protocol ${ours}): ${rebuild}`
      );
    default:
      return `rpc-server ${e.label}: ${p.detail || "the connection failed"}`;
  }
}

/** Probes every server at once; throws RpcServerError naming the first (in the given order) that cannot serve. */
export async function checkRpcServers(endpoints: readonly RpcEndpoint[], timeoutMs = PROBE_TIMEOUT_MS): Promise<void> {
  const addon = loadNative().addon;
  const probes = await Promise.all(endpoints.map((e) => addon.probeRpcServer(e.host, e.port, timeoutMs)));
  endpoints.forEach((e, i) => {
    const problem = describeProbe(e, probes[i]!, timeoutMs);
    if (problem) throw new RpcServerError(e.label, problem);
  });
}

/**
 * After a fault (the child process that held the connections has ended, so every live server is free again): the
 * first server that no longer serves, and what is wrong with it, or null when all of them answer. Synchronous:
 * a pass that failed on the calling thread reports at once. At most timeoutMs per server.
 */
export function findFailedServer(
  endpoints: readonly RpcEndpoint[],
  timeoutMs = PROBE_TIMEOUT_MS,
): { endpoint: RpcEndpoint; problem: string } | null {
  const addon = loadNative().addon;
  for (const e of endpoints) {
    const problem = describeProbe(e, addon.probeRpcServerSync(e.host, e.port, timeoutMs), timeoutMs);
    if (problem) return { endpoint: e, problem };
  }
  return null;
}
