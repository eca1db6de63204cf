// An npm registry that serves one package from a tarball and redirects every other request to registry.npmjs.org:
// `npm install <name> --registry <url>` then installs the tarball as a registry package, the way a consumer gets it
// once it is published (npm 11 treats registry and file: sources differently, e.g. for `prepare`).
// Usage: node one-package-registry.mjs TARBALL; prints the URL on stdout once listening.
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";

const tgz = process.argv[2];
const data = fs.readFileSync(tgz);
const pj = JSON.parse(execFileSync("tar", ["-xzOf", tgz, "package/package.json"], { encoding: "utf8" }));
const file = `/${pj.name}/-/${pj.name}-${pj.version}.tgz`;

const server = http.createServer((req, res) => {
  const base = `http://127.0.0.1:${server.address().port}`;
  if (req.url === `/${pj.name}`) {
    const dist = {
      tarball: base + file,
      integrity: "sha512-" + crypto.createHash("sha512").update(data).digest("base64"),
      shasum: crypto.createHash("sha1").update(data).digest("hex"),
    };
    const version = { ...pj, _id: `${pj.name}@${pj.version}`, dist };
    res.setHeader("content-type", "application/json");
    res.end(
      JSON.stringify({ name: pj.name, "dist-tags": { latest: pj.version }, versions: { [pj.version]: version } }),
    );
  } else if (req.url === file) {
    res.end(data);
  } else {
    res.writeHead(302, { location: `https://registry.npmjs.org${req.url}` });
    res.end();
  }
});
server.listen(0, "127.0.0.1", () => console.log(`http://127.0.0.1:${server.address().port}`));
