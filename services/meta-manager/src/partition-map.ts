// The journal partition map: which journal node leads each partition, at which epoch,
// with which replicas (DESIGN §7 "journal partition metadata"), kept in the catalog as
// one record per partition (`partitions/<p>`, records.ts) and published in
// Catalog.journal_partitions, so services follow it through the catalog watch.
//
// The journal nodes are the source of truth: a pass asks every registered JOURNAL node
// whose lease is alive for its partitions (JournalService.GetPartitions) and records, for
// each partition a node serves, leader = that node, epoch = its epoch, replicas = the
// nodes serving it, leader_address = its address. The journal is not replicated, so one
// node serves a partition; should two claim one (a misconfiguration), the higher epoch
// leads (ties: the smaller node id) and both are listed as replicas.
//
// What a pass does not learn, it does not change: a partition no node reports (its node
// is dead, unreachable or reports it broken) keeps its record, and with no journal node
// registered at all (standalone) there are no records and Catalog.journal_address serves
// every partition.
//
// A record is written only when it differs from the stored one (no write churn; a journal
// restart opens every partition in a new epoch, which is a change). All the changes of a
// pass are one transaction comparing each record's modRevision and the catalog version
// key's, and rewriting the version key (like every catalog change: catalog.ts); a lost
// compare re-reads. A pass that cannot read the store is skipped: nothing is decided on
// a store that does not answer (TrackedMetaStore reports the outage).
//
// Passes run on every catalog change (a journal node registering or its lease expiring),
// every `intervalMs` (an epoch can change without a catalog change), and never overlap.
import type { Client } from "@connectrpc/connect";
import { AbortedError, UnavailableError, abortableSleep, backoffDelays, type Logger } from "@vecraft/common";
import { JournalService, NodeRole, type GetPartitionsResponse } from "@vecraft/rpc";
import type { Catalog } from "./catalog.js";
import { NodeClients } from "./node-clients.js";
import { commitCatalogChange, encodeJournalPartition, readCatalogSnapshot, type CatalogKeys, type JournalPartitionRecord, type NodeRecord } from "./records.js";
import { SerialPasses } from "./serial-passes.js";
import type { Clock } from "./store/clock.js";
import type { MetaStore } from "./store/meta-store.js";

/** What changed in a partition's record; "new" is its first record. */
export type PartitionChangeKind = "new" | "leader" | "epoch" | "other";

export interface PartitionMapObserver {
  change?(kind: PartitionChangeKind): void;
  pass?(outcome: "ok" | "failed" | "skipped"): void;
  casConflict?(): void;
}

export interface PartitionMapOptions {
  readonly store: MetaStore;
  readonly keys: CatalogKeys;
  readonly logger: Logger;
  readonly clock: Clock;
  /** Journal partitions (the cluster record's count); reports of others are ignored. */
  readonly partitions: number;
  /** Pause between passes that run without a catalog change; 0: only on changes. */
  readonly intervalMs: number;
  /** Deadline of one GetPartitions call (default 5 s). */
  readonly callTimeoutMs?: number;
  /** The client of the journal node at `address`; default: a gRPC client, one per address. */
  readonly journalClient?: (address: string) => Client<typeof JournalService>;
  readonly observer?: PartitionMapObserver;
  /** Re-reads after a lost compare within one pass (default 8). */
  readonly casMaxAttempts?: number;
}

export interface PartitionMapPassResult {
  /** Records written by this pass. */
  readonly changed: readonly JournalPartitionRecord[];
  /** Alive JOURNAL nodes asked, by id. */
  readonly journalNodes: readonly string[];
  /** Those whose GetPartitions failed. */
  readonly unreachable: readonly string[];
}

const RETRY = Symbol("retry");

function sameRecord(a: JournalPartitionRecord, b: JournalPartitionRecord): boolean {
  return (
    a.leader === b.leader &&
    a.epoch === b.epoch &&
    a.leaderAddress === b.leaderAddress &&
    a.replicas.length === b.replicas.length &&
    a.replicas.every((r, i) => r === b.replicas[i])
  );
}

function changeKind(before: JournalPartitionRecord | undefined, after: JournalPartitionRecord): PartitionChangeKind {
  if (before === undefined) return "new";
  if (before.leader !== after.leader) return "leader";
  if (before.epoch !== after.epoch) return "epoch";
  return "other";
}

/**
 * The records the reports imply, by partition: for each partition some node serves, the
 * claimant with the highest epoch leads (ties: the smaller node id); all claimants are replicas.
 */
export function planPartitionMap(reports: readonly { node: NodeRecord; status: GetPartitionsResponse }[], partitions: number): Map<number, JournalPartitionRecord> {
  const claims = new Map<number, { node: NodeRecord; epoch: number }[]>();
  for (const { node, status } of reports) {
    for (const p of status.partitions) {
      if (!p.serving || p.partition >= partitions) continue;
      const list = claims.get(p.partition) ?? [];
      list.push({ node, epoch: p.epoch });
      claims.set(p.partition, list);
    }
  }
  const out = new Map<number, JournalPartitionRecord>();
  for (const [partition, list] of claims) {
    list.sort((a, b) => b.epoch - a.epoch || (a.node.id < b.node.id ? -1 : a.node.id > b.node.id ? 1 : 0));
    const lead = list[0];
    if (lead === undefined) continue;
    out.set(partition, {
      partition,
      leader: lead.node.id,
      epoch: lead.epoch,
      replicas: list.map((c) => c.node.id).sort(),
      leaderAddress: lead.node.address,
    });
  }
  return out;
}

export class PartitionMapController {
  private readonly passes: SerialPasses<PartitionMapPassResult>;
  /** One client per journal address; pruned to the alive journal nodes every pass. */
  private readonly clients: NodeClients<typeof JournalService>;
  /** Journal nodes whose last GetPartitions failed (logged once per failure streak). */
  private readonly failing = new Set<string>();
  /** What was last logged as odd in the reports, so a steady state is logged once. */
  private lastOddity = "";
  private skipping = false;
  private readonly casMaxAttempts: number;
  private last: PartitionMapPassResult | undefined;

  constructor(private readonly opts: PartitionMapOptions) {
    this.casMaxAttempts = opts.casMaxAttempts ?? 8;
    this.clients = new NodeClients(JournalService, opts.journalClient);
    this.passes = new SerialPasses({
      clock: opts.clock,
      intervalMs: opts.intervalMs,
      run: (signal) => this.runPass(signal),
      onError: () => {
        // runPass logged and counted it; the next change or interval retries.
      },
    });
  }

  /** Follows `catalog`'s feed and runs the periodic pass. */
  start(catalog: Catalog): void {
    this.passes.follow(catalog);
  }

  /** The result of the last pass that read the store. */
  get lastPass(): PartitionMapPassResult | undefined {
    return this.last;
  }

  /** Stops triggering passes and waits for the running one. */
  close(): Promise<void> {
    return this.passes.close();
  }

  /** Schedules a pass (coalesced with one already waiting). */
  trigger(): void {
    this.passes.trigger();
  }

  /** Runs one pass now (after any running one) and returns what it did. Tests call it directly. */
  pass(signal: AbortSignal = this.passes.signal): Promise<PartitionMapPassResult> {
    return this.passes.pass(signal);
  }

  private async runPass(signal: AbortSignal): Promise<PartitionMapPassResult> {
    const delays = backoffDelays({ initialMs: 2, maxMs: 200, multiplier: 2, jitter: "full" });
    try {
      for (let attempt = 1; ; attempt++) {
        const r = await this.attempt(signal);
        if (r !== RETRY) {
          this.last = r;
          if (this.skipping) {
            this.skipping = false;
            this.opts.logger.info("journal partition map: the metadata store answers again; passes resume");
          }
          this.opts.observer?.pass?.("ok");
          return r;
        }
        this.opts.observer?.casConflict?.();
        if (attempt >= this.casMaxAttempts) {
          throw new AbortedError(`journal partition map: the catalog kept changing concurrently (${attempt} attempts); the next change or interval retries`);
        }
        await abortableSleep(delays.next().value ?? 200, signal);
      }
    } catch (e) {
      if (signal.aborted) throw e;
      if (e instanceof UnavailableError) {
        this.opts.observer?.pass?.("skipped");
        if (!this.skipping) {
          this.skipping = true;
          this.opts.logger.warn("journal partition map pass skipped: the metadata store is unreachable; the map keeps its last records until it answers", { err: e });
        }
      } else {
        this.opts.observer?.pass?.("failed");
        this.opts.logger.error("journal partition map pass failed; retrying at the next change or interval", { err: e });
      }
      throw e;
    }
  }

  /** One read, the journal nodes' reports, and at most one transaction; RETRY after a lost compare. */
  private async attempt(signal: AbortSignal): Promise<PartitionMapPassResult | typeof RETRY> {
    const snap = await readCatalogSnapshot(this.opts.store, this.opts.keys, signal);
    const journals = [...snap.nodes.values()]
      .filter((n) => n.roles.includes(NodeRole.JOURNAL) && snap.alive.has(n.id))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    this.pruneClients(journals);
    const answers = await Promise.all(journals.map(async (node) => ({ node, status: await this.ask(node, signal) })));
    const reports = answers.flatMap((a) => (a.status === undefined ? [] : [{ node: a.node, status: a.status }]));
    const unreachable = answers.filter((a) => a.status === undefined).map((a) => a.node.id);
    this.noteOddities(reports);
    const desired = planPartitionMap(reports, this.opts.partitions);
    const changes = [...desired.values()]
      .filter((rec) => {
        const cur = snap.journalPartitions.get(rec.partition)?.rec;
        return cur === undefined || !sameRecord(cur, rec);
      })
      .sort((a, b) => a.partition - b.partition);
    const result = { changed: changes, journalNodes: journals.map((n) => n.id), unreachable };
    if (changes.length === 0) return result;
    const res = await commitCatalogChange(
      this.opts.store,
      this.opts.keys,
      snap.versionRevision,
      {
        compares: changes.map((rec) => ({ key: this.opts.keys.journalPartition(rec.partition), modRevision: snap.journalPartitions.get(rec.partition)?.modRevision ?? 0 })),
        puts: changes.map((rec) => ({ key: this.opts.keys.journalPartition(rec.partition), value: encodeJournalPartition(rec) })),
      },
      { signal },
    );
    if (!res.committed) return RETRY;
    for (const rec of changes) {
      const before = snap.journalPartitions.get(rec.partition)?.rec;
      const kind = changeKind(before, rec);
      this.opts.observer?.change?.(kind);
      this.opts.logger.info("journal partition map changed", {
        partition: rec.partition,
        change: kind,
        leader: rec.leader,
        epoch: rec.epoch,
        replicas: rec.replicas,
        leaderAddress: rec.leaderAddress,
        previousLeader: before?.leader ?? null,
        previousEpoch: before?.epoch ?? null,
        revision: res.revision,
      });
    }
    return result;
  }

  /** The node's GetPartitions answer, or undefined when it failed (logged once per failure streak). */
  private async ask(node: NodeRecord, signal: AbortSignal): Promise<GetPartitionsResponse | undefined> {
    try {
      const status = await this.clients.read(node.address, (c) => c.getPartitions({}, { signal, timeoutMs: this.opts.callTimeoutMs ?? 5_000 }), signal);
      if (this.failing.delete(node.id)) this.opts.logger.info("journal partition map: journal node answers again", { node: node.id, address: node.address });
      return status;
    } catch (e) {
      if (signal.aborted) throw e;
      if (!this.failing.has(node.id)) {
        this.failing.add(node.id);
        this.opts.logger.warn("journal partition map: a registered journal node did not answer GetPartitions; its partitions keep their records", {
          node: node.id,
          address: node.address,
          err: e,
        });
      }
      return undefined;
    }
  }

  private pruneClients(journals: readonly NodeRecord[]): void {
    this.clients.retain(journals.map((n) => n.address));
    const ids = new Set(journals.map((n) => n.id));
    for (const id of [...this.failing]) if (!ids.has(id)) this.failing.delete(id);
  }

  /** Warns (once per distinct state) about reports naming another node id, or partitions outside the cluster's count. */
  private noteOddities(reports: readonly { node: NodeRecord; status: GetPartitionsResponse }[]): void {
    const odd: string[] = [];
    for (const { node, status } of reports) {
      if (status.nodeId !== "" && status.nodeId !== node.id) odd.push(`node ${node.id} at ${node.address} reports node id ${status.nodeId}`);
      const outside = status.partitions.filter((p) => p.partition >= this.opts.partitions).map((p) => p.partition);
      if (outside.length > 0) odd.push(`node ${node.id} reports partitions ${outside.join(",")} beyond the cluster's ${this.opts.partitions}`);
    }
    const claimed = new Map<number, string[]>();
    for (const { node, status } of reports) {
      for (const p of status.partitions) if (p.serving) claimed.set(p.partition, [...(claimed.get(p.partition) ?? []), node.id]);
    }
    for (const [p, ids] of claimed) if (ids.length > 1) odd.push(`partition ${p} is served by ${ids.join(" and ")}`);
    const summary = odd.join("; ");
    if (summary !== "" && summary !== this.lastOddity) {
      this.opts.logger.warn("journal partition map: the journal nodes' reports look misconfigured (node ids, partition counts or partitions served twice)", {
        problems: odd.slice(0, 20),
      });
    }
    this.lastOddity = summary;
  }
}
