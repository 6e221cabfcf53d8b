import type { CollectionInfo, FieldType, MetadataFieldSpec, Metric } from "@vecraft/client";
import { boolOpt, intOpt, listOpt, requiredString } from "../args.js";
import { CommandFailed, EXIT_USAGE, UsageError } from "../errors.js";
import { count, keyValues, table, toJson, tsTime } from "../format.js";
import type { CommandContext, CommandSpec } from "../registry.js";

const METRICS: readonly Metric[] = ["cosine", "l2", "ip"];

const FIELD_TYPES: Readonly<Record<string, FieldType>> = {
  string: "string",
  str: "string",
  int: "int",
  integer: "int",
  float: "float",
  number: "float",
  double: "float",
  bool: "bool",
  boolean: "bool",
  string_list: "string_list",
  "string-list": "string_list",
  strings: "string_list",
};

/** `name:type[:indexed]`, e.g. `genre:string:indexed`, `year:int`, `tags:string_list`. */
export function parseFieldSpec(text: string): MetadataFieldSpec {
  const parts = text.split(":");
  const [name, type, flag, ...extra] = parts;
  if (name === undefined || name === "" || type === undefined || extra.length > 0) {
    throw new UsageError(`--field must be name:type[:indexed], got ${JSON.stringify(text)}`);
  }
  const t = FIELD_TYPES[type.toLowerCase()];
  if (t === undefined) {
    throw new UsageError(`--field ${name}: unknown type ${JSON.stringify(type)}; use string, int, float, bool or string_list`);
  }
  if (flag !== undefined && flag !== "indexed") {
    throw new UsageError(`--field ${name}: the third part can only be "indexed", got ${JSON.stringify(flag)}`);
  }
  return { name, type: t, indexed: flag === "indexed" };
}

function summary(c: CollectionInfo): string {
  return `dimension ${c.dimension}, ${c.metric}, ${c.shards === 1 ? "1 shard" : `${c.shards} shards`}, replication ${c.replicationFactor}`;
}

function fieldsText(c: CollectionInfo): string {
  return c.fields.length === 0 ? "-" : c.fields.map((f) => `${f.name}:${f.type}${f.indexed ? ":indexed" : ""}`).join(" ");
}

const create: CommandSpec = {
  path: ["collections", "create"],
  summary: "Create a collection",
  args: [{ name: "NAME" }],
  usageHint: "--dimension N --metric cosine|l2|ip",
  options: {
    dimension: { type: "string", value: "N", help: "vector dimension, 1..4096 (required)" },
    metric: { type: "string", value: "M", help: "cosine, l2 or ip (required)" },
    shards: { type: "string", value: "N", help: "number of shards, fixed for the collection's life (default 1)" },
    replication: { type: "string", value: "N", help: "storage replicas per shard (default 1)" },
    m: { type: "string", value: "N", help: "HNSW connectivity (default 16)" },
    "ef-construction": { type: "string", value: "N", help: "HNSW candidate list while building (default 128)" },
    "ef-search": { type: "string", value: "N", help: "HNSW candidate list while searching (default 64)" },
    field: { type: "string", multiple: true, value: "NAME:TYPE[:indexed]", help: "typed metadata field: string, int, float, bool or string_list" },
  },
  examples: [
    "vecraft collections create docs --dimension 384 --metric cosine",
    "vecraft collections create movies --dimension 128 --metric l2 --shards 4 --field genre:string:indexed --field year:int",
  ],
  async run(ctx, args) {
    const name = args.positionals[0]!;
    const dimension = intOpt(args, "dimension", { min: 1, max: 4096 });
    if (dimension === undefined) throw new UsageError("--dimension is required");
    const metric = requiredString(args, "metric").toLowerCase();
    if (!(METRICS as readonly string[]).includes(metric)) {
      throw new UsageError(`--metric must be cosine, l2 or ip, got ${JSON.stringify(metric)}`);
    }
    const shards = intOpt(args, "shards", { min: 1 });
    const replication = intOpt(args, "replication", { min: 1 });
    const m = intOpt(args, "m", { min: 2, max: 128 });
    const efConstruction = intOpt(args, "ef-construction", { min: 1, max: 4096 });
    const efSearch = intOpt(args, "ef-search", { min: 1, max: 4096 });
    const fields = listOpt(args, "field").map(parseFieldSpec);
    const hnsw = {
      ...(m !== undefined ? { m } : {}),
      ...(efConstruction !== undefined ? { efConstruction } : {}),
      ...(efSearch !== undefined ? { efSearch } : {}),
    };
    const created = await ctx.client().createCollection(
      {
        name,
        dimension,
        metric: metric as Metric,
        ...(shards !== undefined ? { shards } : {}),
        ...(replication !== undefined ? { replicationFactor: replication } : {}),
        ...(Object.keys(hnsw).length > 0 ? { hnsw } : {}),
        fields,
      },
      { signal: ctx.signal },
    );
    if (ctx.globals.json) ctx.io.out(toJson(created));
    else ctx.io.out(`Created collection ${JSON.stringify(created.name)} (${summary(created)}).`);
  },
};

const list: CommandSpec = {
  path: ["collections", "list"],
  summary: "List collections",
  examples: ["vecraft collections list", "vecraft collections list --json"],
  async run(ctx) {
    const collections = await ctx.client().listCollections({ signal: ctx.signal });
    if (ctx.globals.json) {
      ctx.io.out(toJson(collections));
      return;
    }
    if (collections.length === 0) {
      ctx.io.out("No collections.");
      return;
    }
    ctx.io.out(
      table(
        ["NAME", { header: "DIMENSION", align: "right" }, "METRIC", { header: "SHARDS", align: "right" }, { header: "REPLICAS", align: "right" }, "FIELDS"],
        collections.map((c) => [c.name, String(c.dimension), c.metric, String(c.shards), String(c.replicationFactor), fieldsText(c)]),
      ),
    );
  },
};

const describe: CommandSpec = {
  path: ["collections", "describe"],
  summary: "Show a collection's schema and statistics",
  args: [{ name: "NAME" }],
  examples: ["vecraft collections describe docs"],
  async run(ctx, args) {
    const c = await ctx.client().describeCollection(args.positionals[0]!, { signal: ctx.signal });
    if (ctx.globals.json) {
      ctx.io.out(toJson(c));
      return;
    }
    ctx.io.out(
      keyValues([
        ["name", c.name],
        ["dimension", String(c.dimension)],
        ["metric", c.metric],
        ["shards", String(c.shards)],
        ["replication", String(c.replicationFactor)],
        ["hnsw", `m=${c.hnsw.m} ef_construction=${c.hnsw.efConstruction} ef_search=${c.hnsw.efSearch}`],
        ["created", `${tsTime(c.createdTs)} (ts ${c.createdTs})`],
        ["records", c.stats !== undefined ? count(c.stats.records) : "-"],
      ]),
    );
    if (c.fields.length > 0) {
      ctx.io.out();
      ctx.io.out(
        table(
          ["FIELD", "TYPE", "INDEXED"],
          c.fields.map((f) => [f.name, f.type, f.indexed ? "yes" : "no"]),
        ),
      );
    }
    if (c.stats !== undefined && c.stats.shards.length > 0) {
      ctx.io.out();
      ctx.io.out(
        table(
          [
            { header: "SHARD", align: "right" },
            { header: "PARTITION", align: "right" },
            { header: "RECORDS", align: "right" },
            { header: "APPLIED OFFSET", align: "right" },
            "APPLIED AT",
            "NODE",
          ],
          c.stats.shards.map((s) => [
            String(s.shard),
            String(s.partition),
            s.available ? count(s.records) : "-",
            s.available ? String(s.appliedOffset) : "-",
            s.available ? tsTime(s.appliedTs) : "unavailable",
            s.node || "-",
          ]),
        ),
      );
    }
  },
};

async function confirmDrop(ctx: CommandContext, name: string): Promise<void> {
  if (ctx.prompt === undefined) {
    throw new CommandFailed(`refusing to drop ${JSON.stringify(name)} without --yes (stdin is not a terminal)`, EXIT_USAGE);
  }
  const answer = await ctx.prompt(`Drop collection ${JSON.stringify(name)} and all its records? Type its name to confirm: `);
  if (answer.trim() !== name) throw new CommandFailed("not confirmed; nothing was dropped");
}

const drop: CommandSpec = {
  path: ["collections", "drop"],
  summary: "Drop a collection and its records",
  description: "Drop a collection and its records. Asks for confirmation on a terminal unless --yes is given.",
  args: [{ name: "NAME" }],
  options: { yes: { type: "boolean", short: "y", help: "do not ask for confirmation" } },
  examples: ["vecraft collections drop docs --yes"],
  async run(ctx, args) {
    const name = args.positionals[0]!;
    if (!boolOpt(args, "yes")) await confirmDrop(ctx, name);
    await ctx.client().dropCollection(name, { signal: ctx.signal });
    if (ctx.globals.json) ctx.io.out(toJson({ dropped: name }));
    else ctx.io.out(`Dropped collection ${JSON.stringify(name)}.`);
  },
};

export const collectionCommands: readonly CommandSpec[] = [create, list, describe, drop];
