// Fashion-MNIST from Debian's `dataset-fashion-mnist` package (IDX ubyte files, gzipped):
// 60,000 train + 10,000 test images of 28x28 = 784 pixels. As in ann-benchmarks'
// fashion-mnist-784-euclidean, vectors are the raw pixel values (0..255) as float32 and
// the distance is L2.
//
// Ground truth (exact top-k of each query over the train vectors) is computed once per
// (queries, train) and cached in bench/results/. Because pixels are integers, squared L2
// distances are computed exactly in JS numbers; usearch's exactSearch (float32, SIMD) only
// proposes candidates, which are then re-ranked exactly.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { exactSearch, MetricKind } from "usearch";

export const DATASET_DIR = "/usr/share/datasets/fashion-mnist";
export const DIM = 784;

export interface Split {
  /** Row-major pixels, `count * DIM` bytes. */
  readonly pixels: Uint8Array;
  readonly count: number;
  /** The class (0..9) of each row. */
  readonly labels: Uint8Array;
}

export interface FashionMnist {
  readonly train: Split;
  readonly test: Split;
}

function readIdx(path: string): Buffer {
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: install the dataset with \`apt-get update && apt-get install -y dataset-fashion-mnist\``);
  }
  const raw = readFileSync(path);
  return path.endsWith(".gz") ? gunzipSync(raw) : raw;
}

function readIdxLabels(path: string, count: number): Uint8Array {
  const buf = readIdx(path);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  // 0x00000801: unsigned bytes, 1 dimension.
  if (view.getUint32(0) !== 0x00000801 || view.getUint32(4) !== count || buf.length < 8 + count) throw new Error(`${path}: not an IDX1 ubyte file of ${count} labels`);
  return buf.subarray(8, 8 + count).slice();
}

function readIdxImages(path: string, labelsPath: string): Split {
  const buf = readIdx(path);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = view.getUint32(0);
  // 0x00000803: unsigned bytes (0x08), 3 dimensions.
  if (magic !== 0x00000803) throw new Error(`${path}: not an IDX3 ubyte file (magic 0x${magic.toString(16)})`);
  const count = view.getUint32(4);
  const rows = view.getUint32(8);
  const cols = view.getUint32(12);
  if (rows * cols !== DIM) throw new Error(`${path}: ${rows}x${cols} images, expected ${DIM} pixels`);
  const pixels = new Uint8Array(buf.buffer, buf.byteOffset + 16, count * DIM);
  if (pixels.length !== count * DIM) throw new Error(`${path}: truncated`);
  return { pixels: pixels.slice(), count, labels: readIdxLabels(labelsPath, count) };
}

export function loadFashionMnist(dir = DATASET_DIR): FashionMnist {
  return {
    train: readIdxImages(join(dir, "train-images-idx3-ubyte.gz"), join(dir, "train-labels-idx1-ubyte.gz")),
    test: readIdxImages(join(dir, "t10k-images-idx3-ubyte.gz"), join(dir, "t10k-labels-idx1-ubyte.gz")),
  };
}

/** The first `n` rows of a split. */
export function head(split: Split, n: number): Split {
  const count = Math.min(n, split.count);
  return { pixels: split.pixels.subarray(0, count * DIM), count, labels: split.labels.subarray(0, count) };
}

/** Rows `start .. start + n - 1` of a split. */
export function slice(split: Split, start: number, n: number): Split {
  const from = Math.min(start, split.count);
  const count = Math.max(0, Math.min(n, split.count - from));
  return { pixels: split.pixels.subarray(from * DIM, (from + count) * DIM), count, labels: split.labels.subarray(from, from + count) };
}

/** One row as a fresh float32 vector. */
export function rowF32(split: Split, i: number): Float32Array {
  return Float32Array.from(split.pixels.subarray(i * DIM, (i + 1) * DIM));
}

/** Every row as float32, row-major (a fresh buffer: usearch ignores subarray offsets). */
export function allF32(split: Split): Float32Array {
  return Float32Array.from(split.pixels.subarray(0, split.count * DIM));
}

/** Exact squared L2 distance between row `i` of `a` and row `j` of `b` (integers, no rounding). */
export function l2sq(a: Split, i: number, b: Split, j: number): number {
  const pa = a.pixels;
  const pb = b.pixels;
  const oa = i * DIM;
  const ob = j * DIM;
  let s = 0;
  for (let d = 0; d < DIM; d++) {
    const x = pa[oa + d]! - pb[ob + d]!;
    s += x * x;
  }
  return s;
}

export interface GroundTruth {
  readonly queries: number;
  readonly train: number;
  readonly k: number;
  /** Per query: the ids (train row numbers) of the exact k nearest, nearest first (ties by id). */
  readonly ids: number[][];
  /** Per query: their exact squared L2 distances. */
  readonly distances: number[][];
}

/** Candidates asked from exactSearch before exact re-ranking (float32 rounding only reorders near-ties). */
const CANDIDATES = 100;
/** Queries per exactSearch call (bounds memory and lets progress be printed). */
const GT_CHUNK = 250;

function computeGroundTruth(train: Split, queries: Split, k: number, log: (s: string) => void): GroundTruth {
  const data = allF32(train);
  const cand = Math.min(CANDIDATES, train.count);
  const ids: number[][] = [];
  const distances: number[][] = [];
  for (let q0 = 0; q0 < queries.count; q0 += GT_CHUNK) {
    const n = Math.min(GT_CHUNK, queries.count - q0);
    const qs = Float32Array.from(queries.pixels.subarray(q0 * DIM, (q0 + n) * DIM));
    const res = exactSearch(data, qs, DIM, cand, MetricKind.L2sq, 0);
    const keysOf = (i: number): BigUint64Array => ("get" in res ? res.get(i).keys : res.keys);
    for (let i = 0; i < n; i++) {
      const q = q0 + i;
      const scored = Array.from(keysOf(i), (key) => Number(key))
        .filter((id) => id < train.count)
        .map((id) => ({ id, d: l2sq(queries, q, train, id) }))
        .sort((a, b) => a.d - b.d || a.id - b.id)
        .slice(0, k);
      ids.push(scored.map((s) => s.id));
      distances.push(scored.map((s) => s.d));
    }
    log(`  ground truth: ${Math.min(q0 + n, queries.count)}/${queries.count} queries`);
  }
  return { queries: queries.count, train: train.count, k, ids, distances };
}

/**
 * Full brute force (exact integer arithmetic, no usearch) for a few queries: the check
 * that the cached ground truth is right.
 */
export function bruteForceCheck(train: Split, queries: Split, gt: GroundTruth, sample: number): { checked: number; mismatches: number } {
  let mismatches = 0;
  const n = Math.min(sample, queries.count);
  for (let q = 0; q < n; q++) {
    const best: { id: number; d: number }[] = [];
    for (let j = 0; j < train.count; j++) {
      const d = l2sq(queries, q, train, j);
      if (best.length < gt.k || d < best[best.length - 1]!.d || (d === best[best.length - 1]!.d && j < best[best.length - 1]!.id)) {
        best.push({ id: j, d });
        best.sort((a, b) => a.d - b.d || a.id - b.id);
        if (best.length > gt.k) best.pop();
      }
    }
    const want = gt.distances[q]!;
    if (best.some((b, i) => b.d !== want[i])) mismatches++;
  }
  return { checked: n, mismatches };
}

/** Loads the cached ground truth for (queries, train), computing and caching it when absent. */
export function groundTruth(cacheDir: string, train: Split, queries: Split, k: number, log: (s: string) => void): { gt: GroundTruth; cached: boolean; path: string; seconds: number } {
  mkdirSync(cacheDir, { recursive: true });
  const path = join(cacheDir, `fashion-mnist-gt-q${queries.count}-t${train.count}-k${k}.json`);
  const t0 = performance.now();
  if (existsSync(path)) {
    try {
      const gt = JSON.parse(readFileSync(path, "utf8")) as GroundTruth;
      if (gt.queries === queries.count && gt.train === train.count && gt.k === k && gt.ids.length === queries.count) {
        return { gt, cached: true, path, seconds: (performance.now() - t0) / 1000 };
      }
    } catch {
      // A corrupt cache is recomputed below.
      log(`  ${path} is unreadable; recomputing`);
    }
  }
  const gt = computeGroundTruth(train, queries, k, log);
  writeFileSync(path, JSON.stringify(gt));
  return { gt, cached: false, path, seconds: (performance.now() - t0) / 1000 };
}

/**
 * Recall@k of one answer, the ann-benchmarks way: a returned id counts when its exact
 * distance is within the k-th true distance (ties with the k-th neighbour count).
 */
export function recallOf(train: Split, queries: Split, gt: GroundTruth, q: number, returned: readonly number[], k: number): number {
  const kth = gt.distances[q]![k - 1]!;
  let hits = 0;
  const seen = new Set<number>();
  for (const id of returned.slice(0, k)) {
    if (id < 0 || id >= train.count || seen.has(id)) continue;
    seen.add(id);
    if (l2sq(queries, q, train, id) <= kth) hits++;
  }
  return hits / k;
}
