// `hsd serve`: start the OpenAI-compatible server and run until SIGINT or SIGTERM, then shut down cleanly (the
// running generation stops at its next target pass, waiting requests get 503, connections close).

import type { Hsd } from "../api/hsd.js";
import { HsdServer, type ServeOptions } from "../server/server.js";

export async function serve(hsd: Hsd, options: ServeOptions): Promise<void> {
  const log = options.log ?? (() => {});
  const server = await HsdServer.start(hsd, options);
  log(`listening on ${server.url} (OpenAI API at ${server.url}/v1, model ${server.modelId})`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  log("shutting down");
  await server.close();
}
