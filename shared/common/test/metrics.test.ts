import { describe, expect, it } from "vitest";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { JournalService } from "@vecraft/rpc";
import { UnavailableError, codeLabel, createMetrics, rpcMetricsInterceptor } from "../src/index.js";

describe("createMetrics", () => {
  it("returns a fresh registry with the default metrics, event-loop lag included", async () => {
    const a = createMetrics();
    const b = createMetrics({ prefix: "vecraft_" });
    expect(a).not.toBe(b);
    expect(await a.metrics()).toContain("nodejs_eventloop_lag_seconds");
    expect(await b.metrics()).toContain("vecraft_nodejs_eventloop_lag_seconds");
    expect(await createMetrics({ collectDefaults: false }).metrics()).toBe("\n");
  });
});

describe("codeLabel", () => {
  it("uses the wire names of codes", () => {
    expect(codeLabel(undefined)).toBe("ok");
    expect(codeLabel(Code.NotFound)).toBe("not_found");
    expect(codeLabel(Code.DeadlineExceeded)).toBe("deadline_exceeded");
    expect(codeLabel(Code.Unavailable)).toBe("unavailable");
  });
});

describe("rpcMetricsInterceptor", () => {
  function setup(): { registry: ReturnType<typeof createMetrics>; client: ReturnType<typeof createClient<typeof JournalService>> } {
    const registry = createMetrics({ collectDefaults: false });
    const transport = createRouterTransport(
      (router) => {
        router.service(JournalService, {
          getPartitions(_req, ctx) {
            if (ctx.requestHeader.get("x-fail") !== null) throw new ConnectError("busy", Code.ResourceExhausted);
            return { nodeId: "n" };
          },
          // eslint-disable-next-line @typescript-eslint/require-await -- Connect wants an async iterable; nothing to await here
          async *subscribe(req) {
            yield { nextOffset: 1n };
            if (req.partition === 9) throw new UnavailableError("leader lost");
            yield { nextOffset: 2n };
          },
        });
      },
      { router: { interceptors: [rpcMetricsInterceptor(registry), rpcMetricsInterceptor(registry)] } },
    );
    return { registry, client: createClient(JournalService, transport) };
  }

  async function count(registry: ReturnType<typeof createMetrics>, method: string, code: string): Promise<number> {
    const text = await registry.metrics();
    const series = `vecraft_rpc_duration_seconds_count{service="vecraft.v1.JournalService",method="${method}",code="${code}"} `;
    const line = text.split("\n").find((l) => l.startsWith(series));
    return line === undefined ? 0 : Number(line.slice(series.length));
  }

  it("times unary calls by service, method and code (registering its metrics once)", async () => {
    const { registry, client } = setup();
    await client.getPartitions({});
    await expect(client.getPartitions({}, { headers: { "x-fail": "1" } })).rejects.toThrow("busy");
    // Two interceptors on one registry share the histogram, so each call counts twice.
    expect(await count(registry, "GetPartitions", "ok")).toBe(2);
    expect(await count(registry, "GetPartitions", "resource_exhausted")).toBe(2);
    const inFlight = await registry.getSingleMetric("vecraft_rpc_in_flight")!.get();
    expect(inFlight.values.every((v) => v.value === 0)).toBe(true);
  });

  it("times a stream until it ends and records errors raised mid-stream", async () => {
    const { registry, client } = setup();
    const got: bigint[] = [];
    for await (const m of client.subscribe({ partition: 1 })) got.push(m.nextOffset);
    expect(got).toEqual([1n, 2n]);
    expect(await count(registry, "Subscribe", "ok")).toBe(2);

    await expect(
      (async () => {
        for await (const _ of client.subscribe({ partition: 9 })) {
          // the first message arrives, then the stream fails
        }
      })(),
    ).rejects.toThrow();
    expect(await count(registry, "Subscribe", "unavailable")).toBe(2);
  });
});
