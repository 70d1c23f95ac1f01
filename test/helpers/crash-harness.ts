/**
 * The crash-consistency harness: runs a workload (each operation followed by a consistency point) through a
 * recording device, then rebuilds the image a crash would leave at chosen points of every CP and checks that the
 * reopened volume is exactly at the CP before or the CP after (never a mix), fsck-clean, with its snapshots intact.
 */
import { expect } from 'vitest';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Volume } from '../../core/fs/volume.js';
import { ImageFileDevice } from '../../core/device/image-file-device.js';
import { RecordingDevice, crashImages, rng, type LogEvent } from './recording-device.js';
import { cloneTree, expectSameTree, pattern, readTree, type Tree } from './model.js';

export interface ModelState {
  tree: Tree;
  snapshots: Map<string, Tree>;
  counter: number;
}

export interface Operation {
  name: string;
  apply(v: Volume, m: ModelState): Promise<void>;
}

const has = (m: ModelState, p: string): boolean => m.tree.has(p);

/** The operations workloads are drawn from (small fixed arguments, so exhaustive enumeration stays small). */
export const OPERATIONS: Operation[] = [
  {
    name: 'create',
    async apply(v, m) {
      const data = pattern(5000 + m.counter, m.counter);
      await v.writeFile('/a', data);
      m.tree.set('/a', data);
    },
  },
  {
    name: 'write',
    async apply(v, m) {
      // Ten blocks of zeros in the middle: they stay holes (a sparse file), crashed like the rest.
      const data = pattern(120_000, m.counter + 100).fill(0, 40_960, 81_920);
      await v.writeFile('/d/b', data).catch(async () => {
        await v.mkdir('/d');
        m.tree.set('/d', 'dir');
        await v.writeFile('/d/b', data);
      });
      m.tree.set('/d/b', data);
    },
  },
  {
    name: 'truncate',
    async apply(v, m) {
      if (!has(m, '/a')) return;
      await v.truncate('/a', 10);
      m.tree.set('/a', (m.tree.get('/a') as Buffer).subarray(0, 10));
    },
  },
  {
    name: 'delete',
    async apply(v, m) {
      const victim = has(m, '/a') ? '/a' : has(m, '/c') ? '/c' : null;
      if (!victim) return;
      await v.remove(victim);
      m.tree.delete(victim);
    },
  },
  {
    name: 'rename',
    async apply(v, m) {
      if (!has(m, '/a')) return;
      await v.rename('/a', '/c');
      m.tree.set('/c', m.tree.get('/a')!);
      m.tree.delete('/a');
    },
  },
  {
    name: 'snapshot-create',
    async apply(v, m) {
      const name = `s${m.counter}`;
      await v.createSnapshot(name);
      m.snapshots.set(name, cloneTree(m.tree));
    },
  },
  {
    name: 'snapshot-delete',
    async apply(v, m) {
      const oldest = [...m.snapshots.keys()][0];
      if (!oldest) return;
      await v.deleteSnapshot(oldest);
      m.snapshots.delete(oldest);
    },
  },
  {
    name: 'cp',
    async apply() {
      // A consistency point with nothing new: sync below.
    },
  },
];

interface Checkpoint {
  generation: number;
  state: ModelState;
  /** Log length when the operation started and when its CP finished. */
  from: number;
  to: number;
}

function snapshotState(m: ModelState): ModelState {
  return { tree: cloneTree(m.tree), snapshots: new Map([...m.snapshots].map(([k, t]) => [k, cloneTree(t)])), counter: m.counter };
}

/** Paths the operation leaves alone (same in `before` and `after`) are as they were; the others may be anything. */
function expectBetween(actual: Tree, before: Tree, after: Tree, context: string): void {
  const same = (a: Tree, b: Tree, p: string): boolean => {
    const x = a.get(p);
    const y = b.get(p);
    if (x === undefined || y === undefined || x === 'dir' || y === 'dir') return x === y;
    return x.equals(y);
  };
  for (const p of new Set([...before.keys(), ...after.keys(), ...actual.keys()])) {
    if (same(before, after, p)) expect(same(actual, before, p), `${context}: ${p} is not what the operation left alone`).toBe(true);
  }
}

/** Checks one crash image: opens it, decides which CP it is at, compares with the model and runs fsck. */
async function checkImage(path: string, image: Buffer, before: Checkpoint, after: Checkpoint, context: string): Promise<void> {
  await writeFile(path, image);
  const v = await Volume.openDevice(await ImageFileDevice.open(path), { cpIntervalMs: 0 });
  try {
    const generation = (await v.info()).generation;
    const at = generation === after.generation ? after : generation === before.generation ? before : null;
    if (at) {
      expectSameTree(await readTree(v), at.state.tree, `${context} (at CP ${generation})`);
      const names = (await v.listSnapshots()).map((s) => s.name).sort();
      expect(names, `${context}: snapshots`).toEqual([...at.state.snapshots.keys()].sort());
    } else {
      // A CP inside the operation (the volume ran short of space and committed to win back freed blocks): a
      // consistent state between the two, in which only what the operation changes may differ from before it.
      expect(generation > before.generation && generation < after.generation, `${context}: reopened at generation ${generation}, expected ${before.generation} to ${after.generation}`).toBe(true);
      expectBetween(await readTree(v), before.state.tree, after.state.tree, `${context} (at CP ${generation}, inside the operation)`);
      const names = (await v.listSnapshots()).map((s) => s.name).sort();
      expect(names, `${context}: snapshots`).toEqual([...before.state.snapshots.keys()].sort());
    }
    const report = await v.fsck();
    expect(report.issues, `${context}: fsck`).toEqual([]);
  } finally {
    await v.close();
  }
  for (const [name, tree] of after.generation === before.generation ? [] : (before.state.snapshots.size ? [...before.state.snapshots] : [])) {
    // Snapshots that existed before the CP are unchanged whatever the crash left (unless this CP deleted them).
    if (!after.state.snapshots.has(name)) continue;
    const s = await Volume.openDevice(await ImageFileDevice.open(path, { readOnly: true }), { snapshot: name });
    try {
      expectSameTree(await readTree(s), tree, `${context}: snapshot ${name}`);
    } finally {
      await s.close();
    }
  }
}

export interface CrashRunOptions {
  dir: string;
  ops: Operation[];
  seed: number;
  /** Random crash points inside each epoch, and random subsets per point. */
  pointsPerEpoch: number;
  subsets: number;
}

/** Runs one workload and checks crash images across every one of its consistency points. Returns images checked. */
export async function runCrashWorkload(o: CrashRunOptions): Promise<number> {
  const imagePath = join(o.dir, 'work.img');
  await rm(imagePath, { force: true });
  const crashPath = join(o.dir, 'crash.img');
  const created = await Volume.create(imagePath, { sizeBytes: 2 ** 20, cpIntervalMs: 0, lock: false });
  await created.close();
  const base = await readFile(imagePath);
  const rec = new RecordingDevice(await ImageFileDevice.open(imagePath));
  const v = await Volume.openDevice(rec, { cpIntervalMs: 0 });
  const m: ModelState = { tree: new Map(), snapshots: new Map(), counter: 0 };
  const checkpoints: Checkpoint[] = [{ generation: (await v.info()).generation, state: snapshotState(m), from: 0, to: 0 }];
  const label = `seed ${o.seed}, workload [${o.ops.map((x) => x.name).join(', ')}]`;
  for (const op of o.ops) {
    m.counter++;
    const from = rec.log.length;
    await op.apply(v, m);
    const generation = await v.sync();
    checkpoints.push({ generation, state: snapshotState(m), from, to: rec.log.length });
  }
  await v.close();
  const random = rng(o.seed);
  let checked = 0;
  for (let k = 1; k < checkpoints.length; k++) {
    const before = checkpoints[k - 1];
    const after = checkpoints[k];
    // Crash points: every flush boundary of this CP's writes, its end, and random points inside each epoch.
    const points = new Set<number>([after.from, after.to]);
    let epochStart = after.from;
    for (let i = after.from; i < after.to; i++) {
      if ((rec.log[i] as LogEvent).kind === 'flush') {
        points.add(i);
        points.add(i + 1);
        for (let r = 0; r < o.pointsPerEpoch && i > epochStart + 1; r++) points.add(epochStart + 1 + Math.floor(random() * (i - epochStart - 1)));
        epochStart = i + 1;
      }
    }
    for (const p of [...points].sort((a, b) => a - b)) {
      for (const img of crashImages(base, rec.log, p, random, o.subsets)) {
        // Anything before this CP began is durable in every image of it: start from the CP-before state.
        await checkImage(crashPath, img.image, before, after, `${label}, CP ${k} (${o.ops[k - 1].name}), ${img.description}`);
        checked++;
      }
    }
  }
  return checked;
}
