import type { RecordVersion } from "@vecraft/client";
import { EXIT_FAILURE } from "../errors.js";
import { jsonPreview, table, toJson, tsTime, vectorPreview } from "../format.js";
import type { CommandSpec } from "../registry.js";

const get: CommandSpec = {
  path: ["get"],
  summary: "Fetch records by id",
  description: "Fetch records by id. Ids that do not exist are reported on stderr, and the exit code is then 1.",
  args: [{ name: "COLLECTION" }, { name: "ID", variadic: true }],
  examples: ["vecraft get docs a1 a2", "vecraft get docs a1 --consistency session --session-token 1234 --json"],
  async run(ctx, args) {
    const [collection, ...ids] = args.positionals as [string, ...string[]];
    const res = await ctx.client().get(collection, ids, { signal: ctx.signal });
    if (ctx.globals.json) {
      ctx.io.out(toJson(res));
    } else if (res.records.length > 0) {
      ctx.io.out(
        table(
          ["ID", "VECTOR", "METADATA"],
          res.records.map((r) => [r.id, vectorPreview(r.vector), jsonPreview(r.metadata, 80)]),
        ),
      );
    }
    if (res.missingIds.length > 0) {
      ctx.io.err(`not found: ${res.missingIds.join(", ")}`);
      return EXIT_FAILURE;
    }
    return undefined;
  },
};

const history: CommandSpec = {
  path: ["history"],
  summary: "Show every version of a record, from the journal",
  args: [{ name: "COLLECTION" }, { name: "ID" }],
  examples: ["vecraft history docs a1", "vecraft history docs a1 --json"],
  async run(ctx, args) {
    const [collection, id] = args.positionals as [string, string];
    const versions: RecordVersion[] = [];
    for await (const page of ctx.client().getRecordHistoryPages(collection, id, { signal: ctx.signal })) {
      versions.push(...page.versions);
    }
    if (ctx.globals.json) {
      ctx.io.out(toJson(versions));
      return;
    }
    if (versions.length === 0) {
      ctx.io.out(`No history for ${JSON.stringify(id)} in ${JSON.stringify(collection)}.`);
      return;
    }
    ctx.io.out(
      table(
        ["TS", "TIME", "OP", "POSITION", "REQUEST", "PRINCIPAL", "VECTOR", "METADATA"],
        versions.map((v) => [
          String(v.ts),
          tsTime(v.ts),
          v.op,
          `${v.partition}:${v.offset}`,
          v.requestId || "-",
          v.principal || "-",
          v.op === "upsert" ? vectorPreview(v.vector) : "-",
          v.op === "upsert" ? jsonPreview(v.metadata) : "-",
        ]),
      ),
    );
  },
};

export const recordCommands: readonly CommandSpec[] = [get, history];
