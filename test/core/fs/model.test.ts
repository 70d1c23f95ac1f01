import { afterAll, beforeAll, describe, it } from 'vitest';
import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import { SnapplaneError } from '../../../core/common/errors.js';
import { cloneTree, expectSameTree, pattern, readTree, type Tree } from '../../helpers/model.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-model-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Real {
  v: Volume;
  path: string;
}
interface Model {
  tree: Tree;
  snapshots: Map<string, Tree>;
  seq: number;
}

const NAMES = ['/a', '/b', '/d/x', '/d/y', '/e/f/g'];
const SIZES = [0, 1, 4095, 4096, 4097, 98_304, 98_305, 300_000];

function parentsOf(p: string): string[] {
  const parts = p.split('/').filter(Boolean);
  return parts.slice(0, -1).map((_, i) => '/' + parts.slice(0, i + 1).join('/'));
}

function ensureParents(m: Model, p: string): void {
  for (const d of parentsOf(p)) m.tree.set(d, 'dir');
}

const isFile = (m: Model, p: string): boolean => m.tree.has(p) && m.tree.get(p) !== 'dir';

class WriteFile implements fc.AsyncCommand<Model, Real> {
  constructor(readonly path: string, readonly size: number, readonly seed: number) {}
  check(m: Readonly<Model>): boolean {
    return parentsOf(this.path).every((d) => !isFile(m as Model, d)) && m.tree.get(this.path) !== 'dir';
  }
  async run(m: Model, r: Real): Promise<void> {
    for (const d of parentsOf(this.path)) if (!m.tree.has(d)) await r.v.mkdir(d);
    ensureParents(m, this.path);
    const data = pattern(this.size, this.seed);
    await r.v.writeFile(this.path, data);
    m.tree.set(this.path, data);
  }
  toString(): string {
    return `write(${this.path}, ${this.size})`;
  }
}

class WriteAt implements fc.AsyncCommand<Model, Real> {
  constructor(readonly path: string, readonly offset: number, readonly length: number) {}
  check(m: Readonly<Model>): boolean {
    return isFile(m as Model, this.path);
  }
  async run(m: Model, r: Real): Promise<void> {
    const data = pattern(this.length, this.offset);
    await r.v.writeAt(this.path, this.offset, data);
    const old = m.tree.get(this.path) as Buffer;
    const next = Buffer.alloc(Math.max(old.length, this.offset + this.length));
    old.copy(next);
    data.copy(next, this.offset);
    m.tree.set(this.path, next);
  }
  toString(): string {
    return `writeAt(${this.path}, ${this.offset}, ${this.length})`;
  }
}

class Truncate implements fc.AsyncCommand<Model, Real> {
  constructor(readonly path: string, readonly size: number) {}
  check(m: Readonly<Model>): boolean {
    return isFile(m as Model, this.path);
  }
  async run(m: Model, r: Real): Promise<void> {
    await r.v.truncate(this.path, this.size);
    const old = m.tree.get(this.path) as Buffer;
    const next = Buffer.alloc(this.size);
    old.copy(next, 0, 0, Math.min(old.length, this.size));
    m.tree.set(this.path, next);
  }
  toString(): string {
    return `truncate(${this.path}, ${this.size})`;
  }
}

class Remove implements fc.AsyncCommand<Model, Real> {
  constructor(readonly path: string) {}
  check(m: Readonly<Model>): boolean {
    return m.tree.has(this.path);
  }
  async run(m: Model, r: Real): Promise<void> {
    await r.v.remove(this.path, { recursive: true });
    for (const k of [...m.tree.keys()]) if (k === this.path || k.startsWith(this.path + '/')) m.tree.delete(k);
  }
  toString(): string {
    return `rm -r ${this.path}`;
  }
}

class Rename implements fc.AsyncCommand<Model, Real> {
  constructor(readonly from: string, readonly to: string) {}
  check(m: Readonly<Model>): boolean {
    return isFile(m as Model, this.from) && this.from !== this.to && !m.tree.has(this.to) && parentsOf(this.to).every((d) => m.tree.get(d) === 'dir');
  }
  async run(m: Model, r: Real): Promise<void> {
    await r.v.rename(this.from, this.to);
    m.tree.set(this.to, m.tree.get(this.from)!);
    m.tree.delete(this.from);
  }
  toString(): string {
    return `mv ${this.from} ${this.to}`;
  }
}

class Snapshot implements fc.AsyncCommand<Model, Real> {
  check(m: Readonly<Model>): boolean {
    return m.snapshots.size < 6;
  }
  async run(m: Model, r: Real): Promise<void> {
    const name = `s${m.seq++}`;
    await r.v.createSnapshot(name);
    m.snapshots.set(name, cloneTree(m.tree));
  }
  toString(): string {
    return 'snapshot';
  }
}

class DeleteSnapshot implements fc.AsyncCommand<Model, Real> {
  constructor(readonly pick: number) {}
  check(m: Readonly<Model>): boolean {
    return m.snapshots.size > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    const name = [...m.snapshots.keys()][this.pick % m.snapshots.size];
    await r.v.deleteSnapshot(name);
    m.snapshots.delete(name);
  }
  toString(): string {
    return `snap delete #${this.pick}`;
  }
}

class Restore implements fc.AsyncCommand<Model, Real> {
  constructor(readonly pick: number, readonly path: string) {}
  check(m: Readonly<Model>): boolean {
    if (m.snapshots.size === 0) return false;
    const snap = [...m.snapshots.values()][this.pick % m.snapshots.size];
    return snap.has(this.path) && parentsOf(this.path).every((d) => !isFile(m as Model, d));
  }
  async run(m: Model, r: Real): Promise<void> {
    const [name, snap] = [...m.snapshots.entries()][this.pick % m.snapshots.size];
    await r.v.restoreFromSnapshot(name, this.path);
    for (const k of [...m.tree.keys()]) if (k === this.path || k.startsWith(this.path + '/')) m.tree.delete(k);
    ensureParents(m, this.path);
    for (const [k, val] of snap) if (k === this.path || k.startsWith(this.path + '/')) m.tree.set(k, val === 'dir' ? 'dir' : Buffer.from(val));
  }
  toString(): string {
    return `restore #${this.pick} ${this.path}`;
  }
}

class Revert implements fc.AsyncCommand<Model, Real> {
  constructor(readonly pick: number) {}
  check(m: Readonly<Model>): boolean {
    return m.snapshots.size > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    const [name, snap] = [...m.snapshots.entries()][this.pick % m.snapshots.size];
    await r.v.revertToSnapshot(name);
    m.tree = cloneTree(snap);
  }
  toString(): string {
    return `revert #${this.pick}`;
  }
}

class Reopen implements fc.AsyncCommand<Model, Real> {
  check(): boolean {
    return true;
  }
  async run(_m: Model, r: Real): Promise<void> {
    await r.v.close();
    r.v = await Volume.open(r.path, { cpIntervalMs: 0 });
  }
  toString(): string {
    return 'reopen';
  }
}

class Sync implements fc.AsyncCommand<Model, Real> {
  check(): boolean {
    return true;
  }
  async run(_m: Model, r: Real): Promise<void> {
    await r.v.sync();
  }
  toString(): string {
    return 'sync';
  }
}

const name = fc.constantFrom(...NAMES);
const writeFile = fc.tuple(name, fc.constantFrom(...SIZES), fc.nat(1000)).map(([p, s, seed]) => new WriteFile(p, s, seed));
const commands = [
  writeFile,
  writeFile,
  writeFile,
  fc.tuple(name, fc.nat(200_000), fc.integer({ min: 1, max: 20_000 })).map(([p, o, l]) => new WriteAt(p, o, l)),
  fc.tuple(name, fc.nat(150_000)).map(([p, s]) => new Truncate(p, s)),
  fc.constantFrom(...NAMES, '/d', '/e').map((p) => new Remove(p)),
  fc.tuple(name, name).map(([a, b]) => new Rename(a, b)),
  fc.constant(new Snapshot()),
  fc.nat(10).map((n) => new DeleteSnapshot(n)),
  fc.tuple(fc.nat(10), fc.constantFrom(...NAMES, '/d', '/e')).map(([n, p]) => new Restore(n, p)),
  fc.nat(10).map((n) => new Revert(n)),
  fc.constant(new Reopen()),
  fc.constant(new Sync()),
];

describe('model-based: the volume against a reference model', () => {
  it('random workloads: every step matches the model; snapshots match their copies; fsck is clean', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 40, size: 'large' }), async (cmds) => {
        const path = join(dir, `m${run++}.img`);
        const real: Real = { v: await Volume.create(path, { sizeBytes: 16 * 2 ** 20, cpIntervalMs: 0 }), path };
        const model: Model = { tree: new Map(), snapshots: new Map(), seq: 0 };
        try {
          await fc.asyncModelRun(() => ({ model, real }), [...cmds].map((c) => wrap(c)));
          expectSameTree(await readTree(real.v), model.tree, 'active');
          for (const [snapName, tree] of model.snapshots) {
            await real.v.sync();
            const s = await Volume.open(path, { snapshot: snapName });
            expectSameTree(await readTree(s), tree, `snapshot ${snapName}`);
            await s.close();
          }
          const report = await real.v.fsck();
          if (!report.clean) throw new Error(`fsck: ${JSON.stringify(report.issues.slice(0, 3))}`);
        } finally {
          await real.v.close().catch(() => undefined);
          await rm(path, { force: true });
          await rm(`${path}.lock`, { force: true });
        }
      }),
      { numRuns: Number(process.env.SNAPPLANE_MODEL_RUNS ?? 100), seed: Number(process.env.SNAPPLANE_MODEL_SEED ?? 20261125), verbose: 1 },
    );
    // The run must really have exercised the engine, not skipped most commands.
    const total = [...executed.values()].reduce((a, b) => a + b, 0);
    if (total < 300 || executed.size < 9) throw new Error(`too few commands ran: ${JSON.stringify([...executed])}`);
    console.log('commands run:', JSON.stringify(Object.fromEntries(executed)));
  }, 300_000);
});

const executed = new Map<string, number>();

/** After each command, the active tree must equal the model. */
function wrap(c: fc.AsyncCommand<Model, Real>): fc.AsyncCommand<Model, Real> {
  return {
    check: (m) => c.check(m),
    async run(m, r) {
      try {
        await c.run(m, r);
      } catch (e) {
        if (e instanceof SnapplaneError) throw new Error(`${c.toString()}: ${e.code} ${e.message}`);
        throw e;
      }
      expectSameTree(await readTree(r.v), m.tree, `after ${c.toString()}`);
      const kind = c.toString().split(/[ (#]/)[0];
      executed.set(kind, (executed.get(kind) ?? 0) + 1);
    },
    toString: () => c.toString(),
  };
}
