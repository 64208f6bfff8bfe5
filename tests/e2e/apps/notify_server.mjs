// An application in Node.js that reloads when the hotconf sidecar calls it
// (hotconf.dev/notify-url: http://localhost:PORT/-/reload): the body names the ConfigMap and the
// revision (never the values), the files (hotconf.dev/files) already hold that revision. It
// answers 204 when it took the config and 422 when it refuses it ("bad"): the sidecar reports
// the first as an ACK and the second as a NACK, with this answer, to the operator.
import fs from "node:fs";
import http from "node:http";
import path from "node:path";

const { HOTCONF_FILES_DIR: dir, OUT: out, HOST: host, PORT: port } = process.env;

const server = http.createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/-/reload") {
    res.writeHead(404).end();
    return;
  }
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    const { name, revision } = JSON.parse(body);
    const value = fs.readFileSync(path.join(dir, name, "value"), "utf8");
    if (value === "bad") {
      res.writeHead(422, { "content-type": "text/plain" }).end("value must not be bad");
      return;
    }
    fs.appendFileSync(out, `${revision} ${value}\n`);
    res.writeHead(204).end();
  });
});

server.listen(Number(port), host, () => fs.writeFileSync(`${out}.ready`, ""));
