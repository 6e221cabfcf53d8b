import { randomUUID } from "node:crypto";
import { intOpt, stringOpt } from "../args.js";
import { EXIT_FAILURE, EXIT_OK, UsageError, describeRpcError } from "../errors.js";
import { count, duration, plural, toJson } from "../format.js";
import { openSource } from "../import/open.js";
import { ImportFailed, requestIdOf, runImport } from "../import/pipeline.js";
import type { ImportResult } from "../import/pipeline.js";
import { ProgressReporter } from "../import/progress.js";
import { IMPORT_FORMATS, formatFromPath } from "../import/source.js";
import type { ImportFormat } from "../import/source.js";
import type { CommandContext, CommandSpec } from "../registry.js";

/** The server's default batch limit is 1000 records. */
const MAX_BATCH = 1000;

function summaryJson(collection: string, file: string, format: ImportFormat, r: ImportResult, prefix: string, retries: number): Record<string, unknown> {
  const seconds = r.elapsedMs / 1000;
  return {
    collection,
    file,
    format,
    records: r.records,
    batches: r.batches,
    seconds: Number(seconds.toFixed(3)),
    recordsPerSecond: seconds > 0 ? Math.round(r.records / seconds) : r.records,
    retries,
    requestIdPrefix: prefix,
    sessionToken: r.sessionToken ?? null,
  };
}

function printSummary(ctx: CommandContext, collection: string, r: ImportResult, prefix: string, failed: boolean): void {
  const seconds = r.elapsedMs / 1000;
  const rate = seconds > 0 ? Math.round(r.records / seconds) : r.records;
  const say = failed ? (line: string): void => ctx.io.err(line) : (line: string): void => ctx.io.out(line);
  say(
    `${failed ? "Before stopping, imported" : "Imported"} ${plural(r.records, "record")} in ${plural(r.batches, "batch", "batches")} into ${JSON.stringify(collection)} in ${duration(seconds)} (${count(rate)} records/s).`,
  );
  if (ctx.retries() > 0) say(`Transient failures retried: ${ctx.retries()}.`);
  say(`Request ids: ${requestIdOf(prefix, 1)} onwards (vecraft lineage <id>).`);
  say(`Session token: ${r.sessionToken ?? "-"}`);
}

const importCommand: CommandSpec = {
  path: ["import"],
  summary: "Import vectors from a JSONL, CSV, .npy or .fvecs file",
  description: [
    "Import vectors from a file into a collection, streaming it in batches.",
    "",
    "Formats (by extension unless --format is given):",
    '  jsonl  one {"id": ..., "vector": [...], "metadata": {...}} per line; other keys join the metadata',
    "  csv    a header row; an id column, and a vector column holding a JSON array or columns v0..vN;",
    "         other columns become metadata (numbers parsed, empty cells left out)",
    "  npy    a 2-D float32/float64 NumPy array; row i gets id <id-prefix>i",
    "  fvecs  int32 dimension + float32 values per vector; row i gets id <id-prefix>i",
    "",
    "The first batch the server rejects stops the import, naming the line (text) or row (binary)",
    "of the record at fault. Transient failures are retried with the batch's request id, so a",
    "retried batch is never written twice. Progress goes to stderr; the summary to stdout.",
  ].join("\n"),
  args: [{ name: "COLLECTION" }, { name: "FILE" }],
  options: {
    format: { type: "string", value: "F", help: "jsonl, csv, npy or fvecs (default: from the extension)" },
    batch: { type: "string", value: "N", help: `records per batch, 1..${MAX_BATCH} (default 500)` },
    concurrency: { type: "string", value: "N", help: "batches in flight at once (default 4)" },
    "id-field": { type: "string", value: "NAME", help: 'JSONL key / CSV column of the id (default "id")' },
    "vector-field": { type: "string", value: "NAME", help: 'JSONL key / CSV column of the vector (default "vector")' },
    "id-prefix": { type: "string", value: "P", help: "ids for records without one: P0, P1, ... (npy/fvecs: default none)" },
  },
  examples: [
    "vecraft import docs docs.jsonl",
    "vecraft import movies movies.csv --batch 1000 --concurrency 8",
    "vecraft import sift sift_base.fvecs --id-prefix sift-",
    "vecraft import emb embeddings.npy --id-prefix e --json",
  ],
  async run(ctx, args) {
    const [collection, file] = args.positionals as [string, string];
    const formatText = stringOpt(args, "format");
    let format: ImportFormat | undefined;
    if (formatText !== undefined) {
      if (!(IMPORT_FORMATS as readonly string[]).includes(formatText)) {
        throw new UsageError(`--format must be one of ${IMPORT_FORMATS.join(", ")}, got ${JSON.stringify(formatText)}`);
      }
      format = formatText as ImportFormat;
    } else {
      format = formatFromPath(file);
      if (format === undefined) throw new UsageError(`cannot tell the format of ${JSON.stringify(file)} from its extension; use --format`);
    }
    const batchSize = intOpt(args, "batch", { min: 1, max: MAX_BATCH }) ?? 500;
    const concurrency = intOpt(args, "concurrency", { min: 1, max: 64 }) ?? 4;
    const source = await openSource(
      file,
      format,
      {
        idField: stringOpt(args, "id-field") ?? "id",
        vectorField: stringOpt(args, "vector-field") ?? "vector",
        idPrefix: stringOpt(args, "id-prefix"),
      },
      ctx.signal,
    );
    const client = ctx.client();
    const prefix = `import-${randomUUID()}`;
    const progress = new ProgressReporter(ctx.io.stderr, ctx.progressIntervalMs, () => ctx.now());
    let result: ImportResult;
    try {
      result = await runImport(
        client,
        source,
        {
          collection,
          batchSize,
          concurrency,
          requestIdPrefix: prefix,
          signal: ctx.signal,
          now: () => ctx.now(),
          describeError: (err) => describeRpcError(err, ctx.globals.url),
        },
        progress,
      );
    } catch (e) {
      if (!(e instanceof ImportFailed)) throw e;
      if (ctx.signal.aborted) throw e.cause;
      ctx.io.err(`vecraft import: stopped: ${e.message}`);
      if (ctx.globals.json) {
        ctx.io.out(toJson({ ...summaryJson(collection, file, format, e.result, prefix, ctx.retries()), error: e.message }));
      } else {
        printSummary(ctx, collection, e.result, prefix, true);
      }
      return EXIT_FAILURE;
    }
    if (ctx.globals.json) ctx.io.out(toJson(summaryJson(collection, file, format, result, prefix, ctx.retries())));
    else printSummary(ctx, collection, result, prefix, false);
    return EXIT_OK;
  },
};

export const importCommands: readonly CommandSpec[] = [importCommand];
