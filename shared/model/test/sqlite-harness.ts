// A real SQLite table shaped like the storage node's (metadata as JSON text in a column
// named `metadata`), for checking compiled filters against `matches`.
import Database from "better-sqlite3";
import type { CompiledFilter } from "../src/index.js";

export interface Row {
  readonly id: string;
  readonly metadataJson: string;
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export class FilterHarness {
  private readonly db = new Database(":memory:");
  private readonly insert;
  private readonly clear;

  constructor() {
    this.db.exec("CREATE TABLE records (id TEXT PRIMARY KEY, metadata TEXT NOT NULL)");
    this.insert = this.db.prepare<[string, string]>("INSERT INTO records (id, metadata) VALUES (?, ?)");
    this.clear = this.db.prepare("DELETE FROM records");
  }

  load(rows: readonly Row[]): void {
    this.db.transaction(() => {
      this.clear.run();
      for (const r of rows) this.insert.run(r.id, r.metadataJson);
    })();
  }

  /** Ids selected by the compiled SQL, sorted. */
  selectSql(f: CompiledFilter): string[] {
    const rows = this.db.prepare(`SELECT id FROM records WHERE ${f.sql}`).all(...f.params) as { id: string }[];
    return rows.map((r) => r.id).sort(byCodeUnits);
  }

  /** Ids accepted by `matches` on the stored JSON parsed back (as a storage node would), sorted. */
  static selectJs(f: CompiledFilter, rows: readonly Row[]): string[] {
    return rows
      .filter((r) => f.matches(JSON.parse(r.metadataJson) as Record<string, unknown>))
      .map((r) => r.id)
      .sort(byCodeUnits);
  }

  close(): void {
    this.db.close();
  }
}
