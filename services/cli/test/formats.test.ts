// The import formats, parsed from real files in a temp dir.
import { writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InputError } from "../src/index.js";
import { csvValue, splitCsvRecord } from "../src/import/csv.js";
import { openSource } from "../src/import/open.js";
import { readLines } from "../src/import/readers.js";
import type { ImportFormat, SourceOptions, SourceRecord } from "../src/import/source.js";
import { collect, tempDir, writeFvecs, writeNpy } from "./helpers.js";

let dir: Awaited<ReturnType<typeof tempDir>>;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(async () => {
  await dir.cleanup();
});

const defaults: SourceOptions = { idField: "id", vectorField: "vector", idPrefix: undefined };

async function read(name: string, content: string | Buffer, format: ImportFormat, opts: Partial<SourceOptions> = {}): Promise<SourceRecord[]> {
  const path = dir.file(name);
  await writeFile(path, content);
  return collect(await openSource(path, format, { ...defaults, ...opts }));
}

async function readError(name: string, content: string | Buffer, format: ImportFormat, opts: Partial<SourceOptions> = {}): Promise<string> {
  try {
    await read(name, content, format, opts);
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return (e as Error).message;
  }
  throw new Error("expected the file to be rejected");
}

const plain = (rs: SourceRecord[]): unknown[] => rs.map((r) => ({ id: r.id, vector: Array.from(r.vector), metadata: r.metadata, loc: r.loc }));

describe("lines", () => {
  it("splits on LF and CRLF, strips a BOM, keeps the last line without a newline, and tracks byte offsets across chunks", async () => {
    const path = dir.file("lines.txt");
    // Over 1 MiB with multi-byte characters, so lines straddle the reader's chunks.
    const body = Array.from({ length: 40_000 }, (_, i) => `línea ${i} ${"é".repeat(i % 7)}`);
    const text = `\ufeff${body.join("\r\n")}`;
    await writeFile(path, text);
    const lines = await collect(readLines(path));
    expect(lines).toHaveLength(40_000);
    expect(lines[0]!.text).toBe("línea 0 ");
    expect(lines[12_345]!.text).toBe(body[12_345]);
    expect(lines[39_999]).toEqual({ text: body[39_999], line: 40_000, end: Buffer.byteLength(text) });
    expect(lines[1]!.end).toBe(Buffer.byteLength(`\ufeff${body[0]}\r\n${body[1]}\r\n`));
  });
});

describe("jsonl", () => {
  it("reads id, vector and metadata, adds other keys to the metadata, and skips blank lines", async () => {
    const rs = await read(
      "a.jsonl",
      [
        '{"id": "a", "vector": [1, 2], "metadata": {"genre": "drama"}}',
        "",
        '{"id": 7, "vector": [3.5, -4], "year": 2001, "metadata": {"year": 1999}}',
        '  {"id": "c", "vector": [0, 1]}  ',
      ].join("\n"),
      "jsonl",
    );
    expect(plain(rs)).toEqual([
      { id: "a", vector: [1, 2], metadata: { genre: "drama" }, loc: 1 },
      { id: "7", vector: [3.5, -4], metadata: { year: 1999 }, loc: 3 },
      { id: "c", vector: [0, 1], metadata: undefined, loc: 4 },
    ]);
  });

  it("uses other field names and numbers records without ids when asked", async () => {
    const rs = await read("b.jsonl", '{"doc": "x", "emb": [1]}\n{"emb": [2]}\n', "jsonl", { idField: "doc", vectorField: "emb", idPrefix: "n-" });
    expect(rs.map((r) => r.id)).toEqual(["x", "n-1"]);
    expect(await readError("b2.jsonl", '{"emb": [2]}\n', "jsonl", { vectorField: "emb" })).toBe(
      'line 1: no "id" (use --id-field, or --id-prefix to number the records)',
    );
  });

  it("names the line of a bad record", async () => {
    const good = '{"id": "a", "vector": [1]}';
    expect(await readError("c.jsonl", `${good}\n${good}\n{"id": "b", "vector": [1,}\n`, "jsonl")).toMatch(/^line 3: invalid JSON/);
    expect(await readError("d.jsonl", `${good}\n[1, 2]\n`, "jsonl")).toBe("line 2: expected a JSON object");
    expect(await readError("e.jsonl", '{"id": "a", "vector": [1, "x"]}\n', "jsonl")).toBe('line 1: "vector"[1] is not a number: "x"');
    expect(await readError("f.jsonl", '{"id": "a"}\n', "jsonl")).toBe('line 1: no "vector" (use --vector-field)');
    expect(await readError("g.jsonl", '{"id": true, "vector": [1]}\n', "jsonl")).toBe('line 1: "id" must be a string or a number, got true');
    expect(await readError("h.jsonl", '{"id": "a", "vector": [1], "metadata": 3}\n', "jsonl")).toBe('line 1: "metadata" must be a JSON object');
  });

  it("reports the byte offset of each record for progress", async () => {
    const text = '{"id":"a","vector":[1]}\r\n{"id":"b","vector":[2]}\r\n';
    const rs = await read("off.jsonl", text, "jsonl");
    expect(rs.map((r) => r.end)).toEqual([25, 50]);
  });
});

describe("csv", () => {
  it("splits quoted fields with commas, escaped quotes and empty cells", () => {
    expect(splitCsvRecord('a,"b, c","say ""hi""",,"",x')).toEqual(["a", "b, c", 'say "hi"', "", "", "x"]);
    expect(splitCsvRecord('"open')).toBeUndefined();
    expect(splitCsvRecord("")).toEqual([""]);
    // A quote inside an unquoted field is kept.
    expect(splitCsvRecord('5" screen,x')).toEqual(['5" screen', "x"]);
  });

  it("parses numbers but keeps identifiers like 007 as strings", () => {
    expect(csvValue("42")).toBe(42);
    expect(csvValue("-1.5e3")).toBe(-1500);
    expect(csvValue("007")).toBe("007");
    expect(csvValue("1,5")).toBe("1,5");
    expect(csvValue("NaN")).toBe("NaN");
    expect(csvValue("drama")).toBe("drama");
  });

  it("reads a vector column holding a JSON array; other columns are metadata", async () => {
    const rs = await read(
      "a.csv",
      ["id,vector,genre,year,note", 'a,"[1, 2]",drama,2001,"multi', 'line, note"', 'b,"[3,4]",,1999,', "", 'c," [5 ,6]",comedy,,'].join("\n"),
      "csv",
    );
    expect(plain(rs)).toEqual([
      { id: "a", vector: [1, 2], metadata: { genre: "drama", year: 2001, note: "multi\nline, note" }, loc: 2 },
      { id: "b", vector: [3, 4], metadata: { year: 1999 }, loc: 4 },
      { id: "c", vector: [5, 6], metadata: { genre: "comedy" }, loc: 6 },
    ]);
  });

  it("reads columns v0..vN as the vector, in index order, with CRLF line ends", async () => {
    const rs = await read("b.csv", "v1,id,v0,v2,tag\r\n0.5,x,0.25,1e-3,t\r\n-1,y,.5,2,\r\n", "csv");
    expect(plain(rs)).toEqual([
      { id: "x", vector: [0.25, 0.5, 0.001], metadata: { tag: "t" }, loc: 2 },
      { id: "y", vector: [0.5, -1, 2], metadata: undefined, loc: 3 },
    ]);
  });

  it("numbers rows without an id column when --id-prefix is given", async () => {
    const rs = await read("c.csv", "v0,v1\n1,2\n3,4\n", "csv", { idPrefix: "row-" });
    expect(rs.map((r) => r.id)).toEqual(["row-0", "row-1"]);
  });

  it("rejects missing values, extra fields and bad headers with the line number", async () => {
    expect(await readError("d.csv", "id,v0,v1\na,1,2\nb,1,\n", "csv")).toBe("line 3: v1 is empty");
    expect(await readError("e.csv", "id,v0,v1\na,1,x\n", "csv")).toBe('line 2: v1 is not a number: "x"');
    expect(await readError("f.csv", "id,v0\na,1,extra\n", "csv")).toBe("line 2: 3 fields, but the header has 2");
    expect(await readError("g.csv", "id,v0,v2\na,1,2\n", "csv")).toBe("line 1: the vector columns must be v0..v1 without gaps; v1 is missing");
    expect(await readError("h.csv", "id,name\na,b\n", "csv")).toBe('line 1: no vector: expected a "vector" column holding a JSON array, or columns v0..vN');
    expect(await readError("i.csv", "name,v0\na,1\n", "csv")).toBe('line 1: no "id" column (use --id-field, or --id-prefix to number the rows)');
    expect(await readError("j.csv", 'id,vector\na,"[1,2]"\nb,"[1,2\n', "csv")).toBe("line 3: a quoted field is not closed by the end of the file (line 3)");
    expect(await readError("k.csv", 'id,vector\na,"1;2"\n', "csv")).toMatch(/^line 2: "vector" is not a JSON array/);
    expect(await readError("l.csv", 'id,vector\n,"[1]"\n', "csv")).toBe('line 2: the "id" is empty');
  });
});

describe("npy", () => {
  const rows = [
    [1, 2, 3],
    [4.5, -5, 6],
  ];

  it.each([1, 2, 3] as const)("reads a float32 array in format version %i", async (version) => {
    const path = dir.file(`v${version}.npy`);
    await writeNpy(path, rows, { version });
    const source = await openSource(path, "npy", { ...defaults, idPrefix: "e" });
    expect(source.totalRecords).toBe(2);
    const rs = await collect(source);
    expect(plain(rs)).toEqual([
      { id: "e0", vector: [1, 2, 3], metadata: undefined, loc: 0 },
      { id: "e1", vector: [4.5, -5, 6], metadata: undefined, loc: 1 },
    ]);
    expect(rs[0]!.vector).toBeInstanceOf(Float32Array);
    expect(rs[1]!.end).toBe(source.totalBytes);
  });

  it("reads float64 arrays, with ids from the row index by default", async () => {
    const path = dir.file("f8.npy");
    await writeNpy(path, [[0.1, 0.2]], { dtype: "<f8" });
    const rs = await collect(await openSource(path, "npy", defaults));
    expect(rs.map((r) => [r.id, Array.from(r.vector)])).toEqual([["0", [0.1, 0.2]]]);
  });

  it("rejects what it cannot read, saying why", async () => {
    const cases: [string, NpyCase][] = [
      ["big-endian", { dtype: ">f4" }],
      ["only float32 and float64", { dtype: "<i4" }],
      ["Fortran order", { fortran: true }],
      ["expected a 2-D", { shape: [6] }],
      ["truncated", { shape: [3, 3] }],
    ];
    for (const [message, opts] of cases) {
      const path = dir.file(`bad-${message.replace(/\W/g, "")}.npy`);
      await writeNpy(path, rows, opts);
      await expect(openSource(path, "npy", defaults)).rejects.toThrow(message);
    }
    await writeFile(dir.file("not.npy"), "id,vector\n");
    await expect(openSource(dir.file("not.npy"), "npy", defaults)).rejects.toThrow("not a .npy file");
  });
});

type NpyCase = Parameters<typeof writeNpy>[2];

describe("fvecs", () => {
  it("reads int32 dimension + float32 values per vector", async () => {
    const path = dir.file("a.fvecs");
    await writeFvecs(path, [
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    const source = await openSource(path, "fvecs", { ...defaults, idPrefix: "sift-" });
    const rs = await collect(source);
    expect(plain(rs)).toEqual([
      { id: "sift-0", vector: [1, 2], metadata: undefined, loc: 0 },
      { id: "sift-1", vector: [3, 4], metadata: undefined, loc: 1 },
      { id: "sift-2", vector: [5, 6], metadata: undefined, loc: 2 },
    ]);
    expect(source.totalRecords).toBe(3);
    expect(rs.map((r) => r.end)).toEqual([12, 24, 36]);
  });

  it("rejects a truncated file, a changing dimension and an implausible one", async () => {
    const path = dir.file("t.fvecs");
    await writeFvecs(path, [[1, 2, 3]]);
    const whole = await import("node:fs/promises").then((fs) => fs.readFile(path));
    expect(await readError("t2.fvecs", whole.subarray(0, whole.length - 2), "fvecs")).toBe("row 0: the file ends after 10 of its 12 bytes (truncated?)");
    const mixed = dir.file("mixed.fvecs");
    await writeFvecs(mixed, [
      [1, 2],
      [1, 2, 3],
    ]);
    await expect(collect(await openSource(mixed, "fvecs", defaults))).rejects.toThrow("row 1: dimension 3, but row 0 has 2");
    expect(await readError("text.fvecs", "hello world, not vectors", "fvecs")).toMatch(/^row 0: dimension \d+ is not plausible/);
  });
});
