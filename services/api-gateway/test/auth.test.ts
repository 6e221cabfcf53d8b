// API keys, roles, collection scopes and rate limits over a real server: gRPC codes and
// the HTTP statuses curl sees (401, 403, 429).
import { afterEach, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import { Metric } from "@vecraft/rpc";
import { parseApiKeys, sha256Hex } from "../src/index.js";
import { expectCode, startGateway, stopAll, vec, type Harness } from "./helpers.js";

afterEach(stopAll);

const ADMIN = "admin-secret-0123456789";
const WRITER = "writer-secret-0123456789";
const READER = "reader-secret-0123456789";
const SLOW = "slow-reader-secret-0123456789";

const keys = parseApiKeys(
  [
    { id: "ops", key_sha256: sha256Hex(ADMIN), role: "admin" },
    { id: "ingest", key_sha256: sha256Hex(WRITER), role: "writer", collections: ["docs"] },
    { id: "dashboards", key: READER, role: "reader" },
    { id: "slow", key: SLOW, role: "reader", requests_per_second: 2, bytes_per_second: 0 },
  ],
  "test keys",
);

async function setup(): Promise<Harness> {
  // A clock that never moves: rate-limit buckets do not refill during the test.
  const h = await startGateway({ apiKeys: keys, now: () => 0 });
  const admin = h.clientWithKey(ADMIN);
  await admin.createCollection({ name: "docs", dimension: 2, metric: Metric.L2 });
  await admin.createCollection({ name: "secret", dimension: 2, metric: Metric.L2 });
  return h;
}

describe("API keys", () => {
  it("missing or unknown keys are UNAUTHENTICATED (401)", async () => {
    const h = await setup();
    await expectCode(h.client.listCollections({}), Code.Unauthenticated, /missing API key/);
    await expectCode(h.clientWithKey("guess-guess-guess-guess").listCollections({}), Code.Unauthenticated, /unknown API key/);
    const none = await h.json("ListCollections", {});
    expect(none.status).toBe(401);
    expect(none.body["code"]).toBe("unauthenticated");
    const bad = await h.json("ListCollections", {}, { authorization: "Bearer nope" });
    expect(bad.status).toBe(401);
    const ok = await h.json("ListCollections", {}, { "x-api-key": READER });
    expect(ok.status).toBe(200);
  });

  it("roles and collection scopes are enforced (403); the key id is the principal in the journal", async () => {
    const h = await setup();
    const writer = h.clientWithKey(WRITER);
    const reader = h.clientWithKey(READER);
    const admin = h.clientWithKey(ADMIN);

    const w = await writer.upsert({ collection: "docs", records: [{ id: "a", vector: [1, 2] }], requestId: "w-1" });
    expect(h.fake.dataEntries().map((e) => e.payload.case === "data" && e.payload.value.principal)).toEqual(["ingest"]);
    expect((await admin.getRecordHistory({ collection: "docs", id: "a" })).versions[0]!.principal).toBe("ingest");

    await expectCode(
      writer.upsert({ collection: "secret", records: [{ id: "a", vector: [1, 2] }] }),
      Code.PermissionDenied,
      /may not access collection "secret"/,
    );
    await expectCode(
      writer.createCollection({ name: "docs2", dimension: 2, metric: Metric.L2 }),
      Code.PermissionDenied,
      /has role writer; CreateCollection needs admin/,
    );
    await expectCode(writer.dropCollection({ name: "docs" }), Code.PermissionDenied);
    await expectCode(
      reader.upsert({ collection: "docs", records: [{ id: "b", vector: [1, 2] }] }),
      Code.PermissionDenied,
      /has role reader; Upsert needs writer/,
    );
    await expectCode(reader.delete({ collection: "docs", ids: ["a"] }), Code.PermissionDenied);
    // Reads: the writer may read its collection only; the unscoped reader reads anything.
    await writer.search({ collection: "docs", vector: vec(2, 1), k: 1 });
    await expectCode(writer.get({ collection: "secret", ids: ["a"] }), Code.PermissionDenied);
    await reader.get({ collection: "secret", ids: ["a"] });
    // Listing every collection's operations needs an unscoped admin.
    await expectCode(reader.listOperations({}), Code.PermissionDenied, /without a collection needs admin/);
    await expectCode(writer.listOperations({}), Code.PermissionDenied);
    await reader.listOperations({ collection: "docs" });
    await admin.listOperations({});
    // ListCollections shows a scoped key only its collections.
    expect((await writer.listCollections({})).collections.map((c) => c.name)).toEqual(["docs"]);
    expect((await reader.listCollections({})).collections.map((c) => c.name)).toEqual(["docs", "secret"]);
    // Lineage: readers of the collections written; admin for catalog changes.
    expect((await writer.getRequestLineage({ requestId: w.requestId })).entries).toHaveLength(1);
    await admin.upsert({ collection: "secret", records: [{ id: "s", vector: [1, 2] }], requestId: "s-1" });
    await expectCode(writer.getRequestLineage({ requestId: "s-1" }), Code.PermissionDenied);
    await admin.createCollection({ name: "third", dimension: 2, metric: Metric.L2, requestId: "ddl-3" });
    await expectCode(reader.getRequestLineage({ requestId: "ddl-3" }), Code.PermissionDenied, /catalog change needs admin/);
    expect((await admin.getRequestLineage({ requestId: "ddl-3" })).entries).toHaveLength(1);
    // A server stream is checked before it starts.
    await expectCode(
      (async () => {
        for await (const _ of writer.watchChanges({ collection: "secret" })) break;
      })(),
      Code.PermissionDenied,
    );

    const denied = await h.json("Upsert", { collection: "docs", records: [{ id: "c", vector: [1, 2] }] }, { authorization: `Bearer ${READER}` });
    expect(denied.status).toBe(403);
    expect(denied.body["code"]).toBe("permission_denied");
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    expect(metrics).toMatch(/vecraft_gateway_auth_failures_total\{reason="permission_denied"\} [1-9]/);
  });

  it("per-key rate limits answer RESOURCE_EXHAUSTED (429) with a retry hint", async () => {
    const h = await setup();
    const slow = h.clientWithKey(SLOW);
    await slow.listCollections({});
    await slow.listCollections({});
    const e = await expectCode(slow.listCollections({}), Code.ResourceExhausted, /rate limit of 2 requests\/s for API key "slow" exceeded; retry in 500 ms/);
    expect(e.metadata.get("vecraft-retry-after-ms")).toBe("500");
    const res = await fetch(`${h.url}/vecraft.v1.VecraftService/ListCollections`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${SLOW}` },
      body: "{}",
    });
    expect(res.status).toBe(429);
    expect(res.headers.get("vecraft-retry-after-ms")).toBe("500");
    expect(((await res.json()) as { code: string }).code).toBe("resource_exhausted");
    // Other keys have their own buckets.
    await h.clientWithKey(READER).listCollections({});
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    expect(metrics).toMatch(/vecraft_gateway_rate_limited_total\{limit="requests"\} 2/);
  });

  it("a byte rate limit counts request sizes", async () => {
    let t = 0;
    const h = await startGateway({ config: { defaultBytesPerSecond: "1KiB" }, now: () => t });
    await h.client.createCollection({ name: "docs", dimension: 2, metric: Metric.L2 });
    t += 10_000;
    // The first large request drains the bucket (into debt); the next one waits.
    await h.client.upsert({ collection: "docs", records: Array.from({ length: 200 }, (_, i) => ({ id: `r${i}`, vector: [1, i] })) });
    const e = await expectCode(h.client.listCollections({}), Code.ResourceExhausted, /rate limit of 1024 bytes\/s for API key "anonymous"/);
    expect(Number(e.metadata.get("vecraft-retry-after-ms"))).toBeGreaterThan(1000);
    t += 10_000;
    await h.client.listCollections({});
  });
});
