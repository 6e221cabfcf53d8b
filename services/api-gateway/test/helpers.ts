// Test helpers: the gateway on a real port (HTTP/1.1 and HTTP/2 on one socket) in front
// of the in-memory fakes, a gRPC client, and a curl-like JSON caller.
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createMetrics, silentLogger } from "@vecraft/common";
import { VecraftService } from "@vecraft/rpc";
import type { Registry } from "prom-client";
import { loadGatewayConfig, start, type ApiKeySpec, type GatewayConfig, type GatewayDeps, type RunningGateway } from "../src/index.js";
import { FakeCluster, type FakeOptions } from "./fakes.js";

export type GatewayClient = Client<typeof VecraftService>;

export interface Harness {
  readonly fake: FakeCluster;
  readonly gateway: RunningGateway;
  readonly client: GatewayClient;
  readonly registry: Registry;
  readonly url: string;
  /** POST /vecraft.v1.VecraftService/<method> with a JSON body, like curl. */
  json(method: string, body: unknown, headers?: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }>;
  /** A gRPC client sending an API key. */
  clientWithKey(key: string): GatewayClient;
}

const running: RunningGateway[] = [];

export async function stopAll(): Promise<void> {
  await Promise.all(running.splice(0).map((g) => g.stop()));
}

export function testConfig(overrides: Record<string, string> = {}): GatewayConfig {
  const argv = ["--port", "0", "--shutdown-grace-ms", "100"];
  for (const [k, v] of Object.entries(overrides)) argv.push(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, v);
  return loadGatewayConfig({ argv, env: {} });
}

export async function startGateway(
  options: {
    fake?: FakeCluster;
    fakeOptions?: FakeOptions;
    config?: Record<string, string>;
    apiKeys?: readonly ApiKeySpec[];
    now?: () => number;
    /** Replaces the fake meta-manager client (e.g. one that cannot connect). */
    meta?: GatewayDeps["meta"];
    /** Route reads over the catalog's query processors (and --query-url) instead of the fake. */
    routeQueries?: boolean;
  } = {},
): Promise<Harness> {
  const fake = options.fake ?? new FakeCluster(options.fakeOptions);
  const registry = createMetrics({ collectDefaults: false });
  const gateway = await start(testConfig(options.config), {
    logger: silentLogger,
    registry,
    meta: options.meta ?? fake.metaClient(),
    journal: fake.journalClient(),
    ...(options.routeQueries === true ? {} : { query: fake.queryClient() }),
    storage: fake.storageFactory(),
    ...(options.apiKeys !== undefined ? { apiKeys: options.apiKeys } : {}),
    ...(options.now !== undefined ? { now: options.now } : {}),
  });
  running.push(gateway);
  const url = gateway.url;
  return {
    fake,
    gateway,
    registry,
    url,
    client: createClient(VecraftService, createGrpcTransport({ baseUrl: url })),
    clientWithKey: (key) =>
      createClient(
        VecraftService,
        createGrpcTransport({
          baseUrl: url,
          interceptors: [
            (next) => (req) => {
              req.header.set("authorization", `Bearer ${key}`);
              return next(req);
            },
          ],
        }),
      ),
    async json(method, body, headers = {}) {
      const res = await fetch(`${url}/vecraft.v1.VecraftService/${method}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>) };
    },
  };
}

/** The ConnectError a call fails with (the test fails if it succeeds). */
export async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("expected the call to fail");
}

export async function expectCode(p: Promise<unknown>, code: Code, message?: RegExp): Promise<ConnectError> {
  const e = await failure(p);
  if (e.code !== code) throw new Error(`expected ${Code[code]}, got ${Code[e.code]}: ${e.rawMessage}`);
  if (message !== undefined && !message.test(e.rawMessage)) throw new Error(`message ${JSON.stringify(e.rawMessage)} does not match ${String(message)}`);
  return e;
}

/** A vector of `dim` values, deterministic from `seed`, never all zero. */
export function vec(dim: number, seed: number): number[] {
  return Array.from({ length: dim }, (_, i) => Math.fround(Math.sin(seed * 7.1 + i * 1.3) + 1.5));
}

/** Waits until `check` returns true (polling), or fails after `timeoutMs`. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}
