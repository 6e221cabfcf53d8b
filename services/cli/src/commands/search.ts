import { readFile } from "node:fs/promises";
import type { JsonObject } from "@vecraft/client";
import { boolOpt, intOpt, jsonObjectOpt, stringOpt } from "../args.js";
import { InputError, UsageError } from "../errors.js";
import { jsonPreview, num, table, toJson, vectorPreview } from "../format.js";
import { openSource } from "../import/open.js";
import { formatFromPath } from "../import/source.js";
import { vectorFromJson } from "../import/jsonl.js";
import type { CommandSpec } from "../registry.js";

/** A vector written as a JSON array, or as numbers separated by commas or spaces. */
export function parseVectorText(text: string, what: string): number[] {
  const t = text.trim();
  if (t.startsWith("[")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(t);
    } catch (e) {
      throw new UsageError(`${what} is not a JSON array: ${e instanceof Error ? e.message : String(e)}`);
    }
    try {
      return vectorFromJson(parsed, what);
    } catch (e) {
      throw new UsageError(e instanceof Error ? e.message : String(e));
    }
  }
  const parts = t.split(/[\s,]+/).filter((p) => p !== "");
  const out = parts.map(Number);
  if (parts.length === 0 || out.some((x) => !Number.isFinite(x))) {
    throw new UsageError(`${what} must be a JSON array of numbers, like '[0.1, 0.2, 0.3]'`);
  }
  return out;
}

/** The query vector of a file: the first row of a .npy/.fvecs file, else its text. */
async function vectorFromFile(path: string, signal: AbortSignal): Promise<number[]> {
  const format = formatFromPath(path);
  if (format === "npy" || format === "fvecs") {
    const source = await openSource(path, format, { idField: "id", vectorField: "vector", idPrefix: "" }, signal);
    for await (const r of source) return Array.from(r.vector);
    throw new InputError(`${path} holds no vector`);
  }
  let text: string;
  try {
    text = await readFile(path, { encoding: "utf8", signal });
  } catch (e) {
    throw new InputError(`cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return parseVectorText(text, path);
}

const search: CommandSpec = {
  path: ["search"],
  summary: "Find the nearest records to a vector",
  args: [{ name: "COLLECTION" }],
  usageHint: "--vector '[...]' | --vector-file F",
  options: {
    vector: { type: "string", value: "JSON", help: "the query vector, a JSON array" },
    "vector-file": { type: "string", value: "F", help: "read the query vector from a file (JSON/text, or the first row of .npy/.fvecs)" },
    k: { type: "string", value: "N", help: "how many hits, 1..1000 (default 10)" },
    filter: { type: "string", value: "JSON", help: 'metadata filter, e.g. \'{"genre": "drama", "year": {"$gte": 2000}}\'' },
    ef: { type: "string", value: "N", help: "HNSW candidate list size for this search (default: the collection's)" },
    "include-vectors": { type: "boolean", help: "show the hits' vectors" },
    "no-metadata": { type: "boolean", help: "leave the hits' metadata out" },
  },
  examples: [
    "vecraft search docs --vector '[0.1, 0.2, 0.3]' --k 5",
    `vecraft search movies --vector-file q.json --filter '{"year": {"$gte": 2000}}' --consistency strong`,
  ],
  async run(ctx, args) {
    const collection = args.positionals[0]!;
    const text = stringOpt(args, "vector");
    const file = stringOpt(args, "vector-file");
    if ((text === undefined) === (file === undefined)) throw new UsageError("give the query vector with either --vector or --vector-file");
    const vector = text !== undefined ? parseVectorText(text, "--vector") : await vectorFromFile(file!, ctx.signal);
    const k = intOpt(args, "k", { min: 1, max: 1000 }) ?? 10;
    const ef = intOpt(args, "ef", { min: 1 });
    const filter = jsonObjectOpt(args, "filter") as JsonObject | undefined;
    const includeVectors = boolOpt(args, "include-vectors");
    const includeMetadata = !boolOpt(args, "no-metadata");
    const res = await ctx.client().search(collection, vector, {
      k,
      ...(ef !== undefined ? { ef } : {}),
      ...(filter !== undefined ? { filter } : {}),
      includeVectors,
      includeMetadata,
      signal: ctx.signal,
    });
    if (ctx.globals.json) {
      ctx.io.out(toJson(res));
      return;
    }
    if (res.hits.length === 0) {
      ctx.io.out("No hits.");
      return;
    }
    const columns = [{ header: "RANK", align: "right" as const }, "ID", { header: "SCORE", align: "right" as const }];
    if (includeVectors) columns.push("VECTOR");
    if (includeMetadata) columns.push("METADATA");
    ctx.io.out(
      table(
        columns,
        res.hits.map((h, i) => [
          String(i + 1),
          h.id,
          num(h.score, 6),
          ...(includeVectors ? [vectorPreview(h.vector ?? [])] : []),
          ...(includeMetadata ? [jsonPreview(h.metadata)] : []),
        ]),
      ),
    );
    if (res.missingShards.length > 0) ctx.io.err(`warning: partial result, shards without an answer: ${res.missingShards.join(", ")}`);
  },
};

export const searchCommands: readonly CommandSpec[] = [search];
