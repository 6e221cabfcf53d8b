import type { Operation } from "@vecraft/client";
import { intOpt, parseTs, stringOpt } from "../args.js";
import { keyValues, table, toJson, tsTime } from "../format.js";
import type { CommandSpec } from "../registry.js";

const lineage: CommandSpec = {
  path: ["lineage"],
  summary: "Show what a request wrote, and where it has been applied",
  args: [{ name: "REQUEST_ID" }],
  examples: ["vecraft lineage import-3f1c9a2e-...-000001"],
  async run(ctx, args) {
    const res = await ctx.client().getRequestLineage(args.positionals[0]!, { signal: ctx.signal });
    if (ctx.globals.json) {
      ctx.io.out(toJson(res));
      return;
    }
    ctx.io.out(
      keyValues([
        ["request", res.requestId],
        ["entries", String(res.entries.length)],
        ["read at", `${tsTime(res.readTs)} (ts ${res.readTs})`],
      ]),
    );
    if (res.entries.length === 0) return;
    ctx.io.out();
    ctx.io.out(
      table(
        [
          "POSITION",
          "TS",
          "TYPE",
          "COLLECTION",
          { header: "SHARD", align: "right" },
          { header: "UPSERTS", align: "right" },
          { header: "DELETES", align: "right" },
          "PRINCIPAL",
          "REPLICAS",
        ],
        res.entries.map((e) => [
          e.position !== undefined ? `${e.position.partition}:${e.position.offset}` : "-",
          e.position !== undefined ? String(e.position.ts) : "-",
          e.type,
          e.collection,
          e.type === "write" ? String(e.shard) : "-",
          String(e.upsertedIds.length),
          String(e.deletedIds.length),
          e.principal || "-",
          e.replicas.length === 0 ? "-" : e.replicas.map((r) => `${r.node}:${r.applied ? "applied" : "pending"}${r.alive ? "" : "(down)"}`).join(" "),
        ]),
      ),
    );
  },
};

const ops: CommandSpec = {
  path: ["ops"],
  summary: "List journal operations in global order",
  options: {
    collection: { type: "string", value: "NAME", help: "only this collection (without it: every collection, admin only)" },
    principal: { type: "string", value: "KEY_ID", help: "only operations by this API key id" },
    "from-ts": { type: "string", value: "TS", help: "only operations at or after TS (a decimal HLC value, or an ISO time like 2025-01-01T00:00:00Z)" },
    "to-ts": { type: "string", value: "TS", help: "only operations at or before TS" },
    limit: { type: "string", value: "N", help: "at most N operations (default 100)" },
  },
  examples: ["vecraft ops --collection docs --limit 20", "vecraft ops --principal ingest --from-ts 2025-01-01T00:00:00Z --json"],
  async run(ctx, args) {
    const limit = intOpt(args, "limit", { min: 1, max: 1_000_000 }) ?? 100;
    const collection = stringOpt(args, "collection");
    const principal = stringOpt(args, "principal");
    const from = stringOpt(args, "from-ts");
    const to = stringOpt(args, "to-ts");
    const operations: Operation[] = [];
    let more = false;
    for await (const page of ctx.client().listOperationsPages({
      ...(collection !== undefined ? { collection } : {}),
      ...(principal !== undefined ? { principal } : {}),
      ...(from !== undefined ? { fromTs: parseTs(from, "--from-ts") } : {}),
      ...(to !== undefined ? { toTs: parseTs(to, "--to-ts") } : {}),
      limit: Math.min(1000, limit),
      signal: ctx.signal,
    })) {
      operations.push(...page.operations);
      if (operations.length >= limit) {
        more = operations.length > limit || page.nextPageToken !== "";
        break;
      }
    }
    const shown = operations.slice(0, limit);
    if (ctx.globals.json) {
      ctx.io.out(toJson(shown));
      return;
    }
    if (shown.length === 0) {
      ctx.io.out("No operations.");
      return;
    }
    ctx.io.out(
      table(
        [
          "TS",
          "TIME",
          "TYPE",
          "COLLECTION",
          { header: "SHARD", align: "right" },
          "POSITION",
          "REQUEST",
          "PRINCIPAL",
          { header: "UPSERTS", align: "right" },
          { header: "DELETES", align: "right" },
        ],
        shown.map((o) => [
          String(o.ts),
          tsTime(o.ts),
          o.type,
          o.collection || "-",
          o.type === "write" ? String(o.shard) : "-",
          `${o.partition}:${o.offset}`,
          o.requestId || "-",
          o.principal || "-",
          String(o.upserts),
          String(o.deletes),
        ]),
      ),
    );
    const last = shown[shown.length - 1];
    if (more && last !== undefined) ctx.io.err(`(more operations: continue with --from-ts ${last.ts + 1n})`);
  },
};

export const journalCommands: readonly CommandSpec[] = [lineage, ops];
