// TLS: with a certificate and key configured, the gateway serves HTTPS only (HTTP/2 by
// ALPN for gRPC, HTTP/1.1 for Connect JSON) on its one port.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { Metric, VecraftService } from "@vecraft/rpc";
import { startGateway, stopAll } from "./helpers.js";

afterEach(stopAll);

describe("TLS", () => {
  let dir: string | undefined;
  let ok = false;
  beforeAll(() => {
    try {
      dir = mkdtempSync(join(tmpdir(), "vecraft-gw-tls-"));
      execFileSync(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:P-256",
          "-nodes",
          "-days",
          "1",
          "-subj",
          "/CN=localhost",
          "-addext",
          "subjectAltName=IP:127.0.0.1,DNS:localhost",
          "-keyout",
          join(dir, "key.pem"),
          "-out",
          join(dir, "cert.pem"),
        ],
        { stdio: "ignore" },
      );
      ok = true;
    } catch {
      // No usable openssl here: the test is skipped below.
      ok = false;
    }
  });
  afterAll(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("serves gRPC and Connect JSON over HTTPS when a certificate is configured", async (ctx) => {
    if (!ok || dir === undefined) ctx.skip();
    const d = dir!;
    const h = await startGateway({ config: { tlsCertFile: join(d, "cert.pem"), tlsKeyFile: join(d, "key.pem") } });
    expect(h.url.startsWith("https://")).toBe(true);
    const ca = readFileSync(join(d, "cert.pem"), "utf8");
    const grpc = createClient(VecraftService, createGrpcTransport({ baseUrl: h.url, nodeOptions: { ca } }));
    await grpc.createCollection({ name: "docs", dimension: 2, metric: Metric.L2 });
    const json = createClient(VecraftService, createConnectTransport({ baseUrl: h.url, httpVersion: "1.1", nodeOptions: { ca } }));
    expect((await json.listCollections({})).collections.map((c) => c.name)).toEqual(["docs"]);
  });

  it("refuses a certificate without its key", async () => {
    await expect(startGateway({ config: { tlsCertFile: "/nonexistent.pem" } })).rejects.toThrow(/TLS needs both --tls-cert-file and --tls-key-file/);
  });
});
