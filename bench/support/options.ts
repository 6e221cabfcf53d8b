// Command-line values of the benchmarks: integers and lists of integers within bounds,
// with errors that name the flag.

/** `v` as an integer in [min, max], `dflt` when absent. */
export function intOption(v: string | undefined, dflt: number, name: string, min: number, max: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name}: expected an integer in [${min}, ${max}], got ${v}`);
  return n;
}

/** `v` as a number in [min, max], `dflt` when absent. */
export function numberOption(v: string | undefined, dflt: number, name: string, min: number, max: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name}: expected a number in [${min}, ${max}], got ${v}`);
  return n;
}

/** A comma-separated list of integers in [min, max], `dflt` when absent. */
export function intListOption(v: string | undefined, dflt: number[], name: string, min: number, max: number): number[] {
  if (v === undefined) return dflt;
  return v.split(",").map((s) => intOption(s.trim(), 0, name, min, max));
}
