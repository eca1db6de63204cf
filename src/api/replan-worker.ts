// The re-planning worker (docs/ALGORITHM.md §10): plans from an online snapshot off the generating thread, so that
// re-planning costs the generation nothing on a machine with a core to spare. Messages: { id, input } in,
// { id, result } or { id, error } out.

import { parentPort } from "node:worker_threads";
import { replanNamed, type ReplanInput } from "./adaptive.js";

parentPort!.on("message", (message: { id: number; input: ReplanInput }) => {
  try {
    parentPort!.postMessage({ id: message.id, result: replanNamed(message.input) });
  } catch (error) {
    parentPort!.postMessage({ id: message.id, error: error instanceof Error ? error.message : String(error) });
  }
});
