// rpc-server addresses as the user writes them ("host:port", a list with commas in the CLI).
import { InvalidOptionError } from "../errors.js";

export interface RpcEndpoint {
  host: string;
  port: number;
  /** "host:port", as ggml-rpc takes it and as errors name it. */
  label: string;
}

/**
 * Parses rpc-server addresses: "host:port" each (IPv4 address or host name; ggml-rpc's client speaks IPv4 only).
 * `option` names the option in errors ("--rpc", "rpc"). Duplicates are refused: one rpc-server serves one client
 * at a time, so a second connection from the same process would wait forever.
 */
export function parseRpcEndpoints(value: string | readonly string[], option: string): RpcEndpoint[] {
  const items = (typeof value === "string" ? value.split(",") : [...value]).map((s) =>
    typeof s === "string" ? s.trim() : s,
  );
  if (items.length === 0 || (items.length === 1 && items[0] === ""))
    throw new InvalidOptionError(`${option}: name at least one rpc-server as HOST:PORT (e.g. 192.168.1.20:50052)`);
  const seen = new Set<string>();
  return items.map((item) => {
    if (typeof item !== "string")
      throw new InvalidOptionError(`${option}: each rpc-server must be a "HOST:PORT" string, got ${String(item)}`);
    const m = /^([A-Za-z0-9._-]+):(\d{1,5})$/.exec(item);
    const port = m ? Number(m[2]) : NaN;
    if (!m || !(port >= 1 && port <= 65535))
      throw new InvalidOptionError(
        `${option}: "${item}" is not HOST:PORT (an IPv4 address or host name, a port 1-65535; e.g. 192.168.1.20:50052)`,
      );
    const label = `${m[1]}:${port}`;
    if (seen.has(label))
      throw new InvalidOptionError(`${option}: ${label} is named twice (an rpc-server serves one client at a time)`);
    seen.add(label);
    return { host: m[1]!, port, label };
  });
}
