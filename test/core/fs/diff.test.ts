/**
 * Snapshot diff against a model: random writes, overwrites, renames, deletes, restores from snapshots, symlink
 * retargets and reverts, with snapshots between them; then every pair of states is diffed and compared with the
 * diff of the two trees read back (and, where the contents are equal, with which file the model says a path holds).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import type { SnapshotDiff } from '../../../core/api/types.js';
import { expectSameTree, pattern, readTree, type Tree } from '../../helpers/model.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const dir = useTempDir('diff');

/** What the model knows of a path: a folder, or a file or link with the identity of its contents. */
type Entry = { kind: 'dir' } | { kind: 'file' | 'link'; id: number; data: Buffer };
type Entries = Map<string, Entry>;

interface Model {
  entries: Entries;
  snapshots: Map<string, { entries: Entries; tree: Tree }>;
  seq: number;
  nextId: number;
}
interface Real {
  v: Volume;
}

const FILES = ['/a', '/b', '/d/x', '/d/y', '/d/e/z', '/f/w'];
const DIRS = ['/d', '/d/e', '/f'];
const TARGETS = ['a', 'b', '../x', 'd/e'];

function parentsOf(p: string): string[] {
  const parts = p.split('/').filter(Boolean);
  return parts.slice(0, -1).map((_, i) => '/' + parts.slice(0, i + 1).join('/'));
}
const under = (p: string, root: string): boolean => p === root || p.startsWith(root + '/');
const parentsFree = (m: Model, p: string): boolean => parentsOf(p).every((d) => !m.entries.has(d) || m.entries.get(d)!.kind === 'dir');
function ensureParents(m: Model, p: string): void {
  for (const d of parentsOf(p)) m.entries.set(d, { kind: 'dir' });
}
function removeSubtree(m: Model, p: string): void {
  for (const k of [...m.entries.keys()]) if (under(k, p)) m.entries.delete(k);
}

/** How many times each kind of command ran (a property whose commands were mostly skipped proves little). */
const ran = new Map<string, number>();
function count(c: object): void {
  ran.set(c.constructor.name, (ran.get(c.constructor.name) ?? 0) + 1);
}

async function makeParents(v: Volume, p: string): Promise<void> {
  const parent = parentsOf(p).at(-1);
  if (parent) await v.mkdir(parent, { parents: true });
}

/** The tree readTree gives for the model's entries. */
function treeOf(entries: Entries): Tree {
  return new Map([...entries].map(([p, e]) => [p, e.kind === 'dir' ? 'dir' : e.data]));
}

class Write implements fc.AsyncCommand<Model, Real> {
  constructor(readonly path: string, readonly size: number) {}
  check(m: Readonly<Model>): boolean {
    return parentsFree(m as Model, this.path) && m.entries.get(this.path)?.kind !== 'dir';
  }
  async run(m: Model, r: Real): Promise<void> {
    count(this);
    await makeParents(r.v, this.path);
    const id = ++m.nextId;
    const data = pattern(this.size, id);
    await r.v.writeFile(this.path, data);
    ensureParents(m, this.path);
    m.entries.set(this.path, { kind: 'file', id, data });
  }
  toString(): string {
    return `write ${this.path} (${this.size} B)`;
  }
}

class Symlink implements fc.AsyncCommand<Model, Real> {
  constructor(readonly path: string, readonly target: string) {}
  check(m: Readonly<Model>): boolean {
    return parentsFree(m as Model, this.path) && m.entries.get(this.path)?.kind !== 'dir';
  }
  async run(m: Model, r: Real): Promise<void> {
    count(this);
    // A retarget: the old link (or file) goes and a new link takes its name.
    if (m.entries.has(this.path)) await r.v.remove(this.path);
    await makeParents(r.v, this.path);
    await r.v.symlink(this.path, this.target);
    ensureParents(m, this.path);
    m.entries.set(this.path, { kind: 'link', id: ++m.nextId, data: Buffer.from(`-> ${this.target}`) });
  }
  toString(): string {
    return `ln -s ${this.target} ${this.path}`;
  }
}

class Mkdir implements fc.AsyncCommand<Model, Real> {
  constructor(readonly path: string) {}
  check(m: Readonly<Model>): boolean {
    return parentsFree(m as Model, this.path) && !m.entries.has(this.path);
  }
  async run(m: Model, r: Real): Promise<void> {
    count(this);
    await r.v.mkdir(this.path, { parents: true });
    ensureParents(m, this.path);
    m.entries.set(this.path, { kind: 'dir' });
  }
  toString(): string {
    return `mkdir ${this.path}`;
  }
}

class Remove implements fc.AsyncCommand<Model, Real> {
  constructor(readonly path: string) {}
  check(m: Readonly<Model>): boolean {
    return m.entries.has(this.path);
  }
  async run(m: Model, r: Real): Promise<void> {
    count(this);
    await r.v.remove(this.path, { recursive: true });
    removeSubtree(m, this.path);
  }
  toString(): string {
    return `rm -r ${this.path}`;
  }
}

class Rename implements fc.AsyncCommand<Model, Real> {
  constructor(readonly from: string, readonly to: string) {}
  check(m: Readonly<Model>): boolean {
    const src = m.entries.get(this.from);
    const dst = m.entries.get(this.to);
    if (!src || this.from === this.to || under(this.to, this.from)) return false;
    if (!parentsOf(this.to).every((d) => m.entries.get(d)?.kind === 'dir')) return false;
    // Over an existing name: a file or link over a file or link (a folder only to a free name).
    return dst === undefined || (src.kind !== 'dir' && dst.kind !== 'dir');
  }
  async run(m: Model, r: Real): Promise<void> {
    count(this);
    await r.v.rename(this.from, this.to);
    removeSubtree(m, this.to);
    for (const [k, e] of [...m.entries]) {
      if (!under(k, this.from)) continue;
      m.entries.delete(k);
      m.entries.set(this.to + k.slice(this.from.length), e);
    }
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
    count(this);
    const name = `s${m.seq++}`;
    await r.v.createSnapshot(name);
    const tree = await readTree(r.v);
    // The model must describe the volume, or the diffs below would be checked against nonsense.
    expectSameTree(tree, treeOf(m.entries), `snapshot ${name}`);
    m.snapshots.set(name, { entries: new Map(m.entries), tree });
  }
  toString(): string {
    return 'snapshot';
  }
}

class Restore implements fc.AsyncCommand<Model, Real> {
  constructor(readonly pick: number, readonly path: string) {}
  check(m: Readonly<Model>): boolean {
    if (m.snapshots.size === 0) return false;
    const snap = [...m.snapshots.values()][this.pick % m.snapshots.size];
    return snap.entries.has(this.path) && parentsFree(m as Model, this.path);
  }
  async run(m: Model, r: Real): Promise<void> {
    count(this);
    const [name, snap] = [...m.snapshots.entries()][this.pick % m.snapshots.size];
    await r.v.restoreFromSnapshot(name, this.path);
    removeSubtree(m, this.path);
    ensureParents(m, this.path);
    // New files with the snapshot's contents: each restored file is another file than any before it.
    for (const [k, e] of snap.entries) if (under(k, this.path)) m.entries.set(k, e.kind === 'dir' ? e : { ...e, id: ++m.nextId });
  }
  toString(): string {
    return `snap restore #${this.pick} ${this.path}`;
  }
}

class Revert implements fc.AsyncCommand<Model, Real> {
  constructor(readonly pick: number) {}
  check(m: Readonly<Model>): boolean {
    return m.snapshots.size > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    count(this);
    const [name, snap] = [...m.snapshots.entries()][this.pick % m.snapshots.size];
    await r.v.revertToSnapshot(name);
    // The snapshot's own files come back, not copies.
    m.entries = new Map(snap.entries);
  }
  toString(): string {
    return `snap revert #${this.pick}`;
  }
}

/** The diff the model expects from state `x` to state `y` (paths, not inodes). */
function expectedDiff(x: { entries: Entries; tree: Tree }, y: { entries: Entries; tree: Tree }): Pick<SnapshotDiff, 'added' | 'removed' | 'changed'> {
  const added = [...y.entries.keys()].filter((p) => !x.entries.has(p)).sort();
  const removed = [...x.entries.keys()].filter((p) => !y.entries.has(p)).sort();
  const changed = [...y.entries.keys()]
    .filter((p) => {
      const a = x.entries.get(p);
      const b = y.entries.get(p)!;
      if (!a) return false;
      if (a.kind === 'dir' || b.kind === 'dir') return a.kind !== b.kind;
      const ta = x.tree.get(p)!;
      const tb = y.tree.get(p)!;
      const contentDiffers = ta === 'dir' || tb === 'dir' || !ta.equals(tb);
      return contentDiffers || a.kind !== b.kind || a.id !== b.id;
    })
    .sort();
  return { added, removed, changed };
}

const file = fc.constantFrom(...FILES);
const anyPath = fc.constantFrom(...FILES, ...DIRS);
const commands = [
  fc.tuple(file, fc.constantFrom(1, 100, 4096, 4097, 20_000)).map(([p, s]) => new Write(p, s)),
  fc.tuple(file, fc.constantFrom(1, 100, 4096, 4097, 20_000)).map(([p, s]) => new Write(p, s)),
  fc.tuple(file, fc.constantFrom(...TARGETS)).map(([p, t]) => new Symlink(p, t)),
  fc.constantFrom(...DIRS).map((p) => new Mkdir(p)),
  anyPath.map((p) => new Remove(p)),
  fc.tuple(anyPath, anyPath).map(([a, b]) => new Rename(a, b)),
  fc.constant(new Snapshot()),
  fc.constant(new Snapshot()),
  fc.tuple(fc.nat(10), anyPath).map(([n, p]) => new Restore(n, p)),
  fc.nat(10).map((n) => new Revert(n)),
];

describe('snapshot diff', () => {
  it('reports a file restored from a snapshot, a retargeted link and a renamed file exactly', async () => {
    const path = join(dir(), 'cases.img');
    const v = await Volume.create(path, { sizeBytes: 16 * 2 ** 20, cpIntervalMs: 0 });
    try {
      await v.writeFile('/f', Buffer.from('v1\n'));
      await v.symlink('/l', 'a');
      await v.mkdir('/d');
      await v.writeFile('/d/a', Buffer.from('kept'));
      await v.createSnapshot('A');
      await v.writeFile('/f', Buffer.from('version2\n'));
      await v.createSnapshot('B');
      await v.restoreFromSnapshot('A', '/f');
      await v.remove('/l');
      await v.symlink('/l', 'b');
      await v.rename('/d/a', '/d/kept');
      await v.createSnapshot('C');
      // /f holds A's contents again, in a new file; /l points elsewhere; /d/a is now /d/kept.
      expect(await v.diffSnapshots('B', 'C')).toMatchObject({ added: ['/d/kept'], changed: ['/f', '/l'], removed: ['/d/a'] });
      expect(await v.diffSnapshots('A', 'C')).toMatchObject({ added: ['/d/kept'], changed: ['/f', '/l'], removed: ['/d/a'] });
      expect(await v.diffSnapshots('A', 'B')).toMatchObject({ added: [], changed: ['/f'], removed: [] });
      expect(await v.diffSnapshots('C', 'active')).toMatchObject({ added: [], changed: [], removed: [] });
    } finally {
      await v.close();
    }
  });

  it('random workloads: every pair of states diffs as the trees read back do', async () => {
    let run = 0;
    let pairs = 0;
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 40, size: 'large' }), async (cmds) => {
        const path = join(dir(), `r${run++}.img`);
        const real: Real = { v: await Volume.create(path, { sizeBytes: 16 * 2 ** 20, cpIntervalMs: 0 }) };
        const model: Model = { entries: new Map(), snapshots: new Map(), seq: 0, nextId: 0 };
        try {
          await fc.asyncModelRun(() => ({ model, real }), cmds);
          const activeTree = await readTree(real.v);
          expectSameTree(activeTree, treeOf(model.entries), 'active');
          const states = [...model.snapshots].map(([name, s]) => ({ name, ...s }));
          states.push({ name: 'active', entries: model.entries, tree: activeTree });
          for (const x of states) {
            for (const y of states) {
              if (x === y) continue;
              const d = await real.v.diffSnapshots(x.name, y.name);
              expect({ added: d.added, removed: d.removed, changed: d.changed }, `diff ${x.name} ${y.name}`).toEqual(expectedDiff(x, y));
              pairs++;
            }
          }
        } finally {
          await real.v.close().catch(() => undefined);
          await rm(path, { force: true });
          await rm(`${path}.lock`, { force: true });
        }
      }),
      { numRuns: Number(process.env.SNAPPLANE_DIFF_RUNS ?? 60), seed: Number(process.env.SNAPPLANE_DIFF_SEED ?? 20261202), verbose: 1 },
    );
    // The property must have compared real pairs, not runs without snapshots.
    expect(pairs).toBeGreaterThan(200);
    for (const kind of ['Write', 'Symlink', 'Mkdir', 'Remove', 'Rename', 'Snapshot', 'Restore', 'Revert']) expect(ran.get(kind) ?? 0, kind).toBeGreaterThan(10);
  });
});
