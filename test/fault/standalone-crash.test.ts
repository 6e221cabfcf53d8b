// kill -9 of a real standalone process during an ingest, then restart: every
// acknowledged record is searchable, its stored vector comes back exactly (distance 0),
// retries of the requests whose answers were lost (same request_id) apply nothing twice.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Consistency, Metric, OperationType } from "@vecraft/rpc";
import { startVecraft, type VecraftProcess } from "../integration/standalone-process.js";

const DIM = 16;
const WORKERS = 4;
const BATCH = 50;

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "vecraft-sa-crash-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

function vectorFor(n: number): number[] {
  // Deterministic, distinct, non-zero.
  return Array.from({ length: DIM }, (_, i) => Math.fround(Math.sin(n * 12.9898 + i * 78.233) * 43758.5453) % 1 || 0.5);
}

interface Batch {
  readonly requestId: string;
  readonly ids: string[];
}

describe("standalone crash safety (kill -9 during ingest)", () => {
  it("keeps every acknowledged record, exactly once, with its exact vector", async () => {
    const dataDir = join(root, "data");
    let v: VecraftProcess = await startVecraft(dataDir);
    await v.client.createCollection({ name: "crash", dimension: DIM, metric: Metric.L2, shards: 3 });
    const acked: Batch[] = [];
    const lost: Batch[] = [];
    let n = 0;
    let stop = false;
    let token = 0n;
    const worker = async (w: number): Promise<void> => {
      while (!stop) {
        const start = n;
        n += BATCH;
        const batch: Batch = { requestId: `w${w}-b${start}`, ids: Array.from({ length: BATCH }, (_, k) => `r${start + k}`) };
        try {
          const res = await v.client.upsert({
            collection: "crash",
            requestId: batch.requestId,
            records: batch.ids.map((id, k) => ({ id, vector: vectorFor(start + k) })),
          });
          acked.push(batch);
          if (BigInt(res.sessionToken) > token) token = BigInt(res.sessionToken);
        } catch {
          // The process died under this request: retried after the restart.
          lost.push(batch);
          return;
        }
      }
    };
    const loops = Array.from({ length: WORKERS }, (_, w) => worker(w));
    const killAfter = 300 + Math.floor(Math.random() * 700);
    await new Promise((r) => setTimeout(r, killAfter));
    await v.kill9();
    stop = true;
    await Promise.all(loops);
    const context = `killed after ${killAfter} ms; ${acked.length} batches acknowledged, ${lost.length} lost`;
    expect(acked.length, context).toBeGreaterThan(0);

    v = await startVecraft(dataDir);
    try {
      for (const b of lost) {
        const start = Number(b.ids[0]!.slice(1));
        const res = await v.client.upsert({ collection: "crash", requestId: b.requestId, records: b.ids.map((id, k) => ({ id, vector: vectorFor(start + k) })) });
        if (BigInt(res.sessionToken) > token) token = BigInt(res.sessionToken);
      }
      const all = [...acked, ...lost];
      const ids = all.flatMap((b) => b.ids);
      const read = { level: Consistency.SESSION, sessionToken: String(token) };
      // Every record is there, with exactly its vector.
      for (let i = 0; i < ids.length; i += 500) {
        const got = await v.client.get({ collection: "crash", ids: ids.slice(i, i + 500), consistency: read });
        expect(got.missingIds, context).toEqual([]);
        for (const r of got.records) expect(r.vector, `${context}; ${r.id}`).toEqual(vectorFor(Number(r.id.slice(1))).map(Math.fround));
      }
      // Searchable: a record's own vector finds it at distance 0.
      for (const id of ids.filter((_, i) => i % Math.max(1, Math.floor(ids.length / 40)) === 0)) {
        const res = await v.client.search({ collection: "crash", vector: vectorFor(Number(id.slice(1))), k: 1, consistency: read });
        expect(res.hits[0]?.id, context).toBe(id);
        expect(res.hits[0]?.score, context).toBe(0);
      }
      // Nothing applied twice: one journal write per (request, shard), one version per record.
      let count = 0;
      let pageToken = "";
      do {
        const page = await v.client.query({ collection: "crash", limit: 1000, pageToken, consistency: read });
        count += page.records.length;
        pageToken = page.nextPageToken;
      } while (pageToken);
      expect(count, context).toBe(ids.length);
      // Per request, the journal holds exactly its records (a duplicate append would double them).
      const upserts = new Map<string, number>();
      pageToken = "";
      do {
        const page = await v.client.listOperations({ collection: "crash", limit: 1000, pageToken });
        for (const o of page.operations) if (o.type === OperationType.WRITE) upserts.set(o.requestId, (upserts.get(o.requestId) ?? 0) + o.upserts);
        pageToken = page.nextPageToken;
      } while (pageToken);
      for (const b of all) expect(upserts.get(b.requestId), `${context}; request ${b.requestId}`).toBe(BATCH);
      expect(upserts.size, context).toBe(all.length);
      for (const id of [ids[0]!, ids[ids.length - 1]!]) {
        const hist = await v.client.getRecordHistory({ collection: "crash", id });
        expect(hist.versions, `${context}; history of ${id}`).toHaveLength(1);
      }
      console.log(context);
    } catch (e) {
      console.log(`${context}\nserver log:\n${v.logs().slice(-4000)}`);
      throw e;
    } finally {
      await v.stop();
    }
  });
});
