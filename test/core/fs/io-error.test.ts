import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import { ImageFileDevice } from '../../../core/device/image-file-device.js';
import { SnapplaneError } from '../../../core/common/errors.js';
import { FaultyDevice } from '../../helpers/faulty-device.js';
import { cloneTree, expectSameTree, pattern, readTree, type Tree } from '../../helpers/model.js';

let dir: string;
let pristine: string;
let pristineGeneration: number;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-ioerr-'));
  pristine = join(dir, 'pristine.img');
  const v = await Volume.create(pristine, { sizeBytes: 4 * 2 ** 20, cpIntervalMs: 0, lock: false });
  await v.writeFile('/base', pattern(30_000, 1));
  await v.createSnapshot('start');
  pristineGeneration = (await v.info()).generation;
  await v.close();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Outcome {
  completed: boolean;
  error: unknown;
  committed: Map<number, Tree>;
}

/** The workload: every step ends in a CP; `committed` maps each CP generation to the tree it holds. */
async function workload(device: FaultyDevice): Promise<Outcome> {
  const committed = new Map<number, Tree>();
  const tree: Tree = new Map([['/base', pattern(30_000, 1)]]);
  let v: Volume | null = null;
  const step = async (fn: (v: Volume) => Promise<void>, change: () => void): Promise<void> => {
    // Each step is one CP. It may commit on disk even if a later flush fails: record what it holds first.
    const g0 = (await v!.info()).generation;
    change();
    committed.set(g0 + 1, cloneTree(tree));
    await fn(v!);
    const g = await v!.sync();
    expect(g).toBe(g0 + 1);
  };
  try {
    v = await Volume.openDevice(device, { cpIntervalMs: 0 });
    committed.set((await v.info()).generation, cloneTree(tree));
    await step((x) => x.writeFile('/a', pattern(50_000, 2)), () => tree.set('/a', pattern(50_000, 2)));
    await step((x) => x.mkdir('/d').then(() => x.writeFile('/d/b', pattern(200_000, 3))), () => {
      tree.set('/d', 'dir');
      tree.set('/d/b', pattern(200_000, 3));
    });
    await step((x) => x.createSnapshot('mid').then(() => undefined), () => undefined);
    await step((x) => x.remove('/a'), () => tree.delete('/a'));
    await step((x) => x.writeAt('/d/b', 1000, Buffer.from('patched')), () => {
      const b = Buffer.from(tree.get('/d/b') as Buffer);
      Buffer.from('patched').copy(b, 1000);
      tree.set('/d/b', b);
    });
    await step((x) => x.deleteSnapshot('start'), () => undefined);
    await step((x) => x.rename('/d/b', '/c'), () => {
      tree.set('/c', tree.get('/d/b')!);
      tree.delete('/d/b');
    });
    await v.close();
    return { completed: true, error: null, committed };
  } catch (e) {
    await v?.abort().catch(() => undefined);
    if (!v) await device.close().catch(() => undefined);
    return { completed: false, error: e, committed };
  }
}

describe('I/O-error loop', () => {
  for (const persistent of [false, true]) {
    it(`fails operation N ${persistent ? 'and every one after it' : 'once'}, for N = 1, 2, … until the workload completes`, async () => {
      let n = 1;
      for (; n < 10_000; n++) {
        const image = join(dir, `n${n}.img`);
        await copyFile(pristine, image);
        const device = new FaultyDevice(await ImageFileDevice.open(image), n, persistent);
        const outcome = await workload(device);
        if (!device.triggered) {
          expect(outcome.completed).toBe(true);
          break;
        }
        if (!outcome.completed) {
          expect(outcome.error, `N=${n}: ${String(outcome.error)}`).toBeInstanceOf(SnapplaneError);
          expect(['IO', 'CHECKSUM', 'BAD_FORMAT']).toContain((outcome.error as SnapplaneError).code);
        }
        // The image reopens clean, at a committed CP, with exactly that CP's contents.
        const v = await Volume.open(image, { cpIntervalMs: 0, lock: false });
        const g = (await v.info()).generation;
        const expected = outcome.committed.get(g) ?? (g === pristineGeneration ? new Map([['/base', pattern(30_000, 1)]]) : undefined);
        expect(expected, `N=${n}: reopened at unexpected generation ${g}; known ${[...outcome.committed.keys()]}; error ${String(outcome.error)}`).toBeDefined();
        expectSameTree(await readTree(v), expected!, `N=${n}`);
        expect((await v.fsck()).issues, `N=${n}`).toEqual([]);
        await v.close();
        await rm(image);
      }
      expect(n).toBeGreaterThan(20);
    }, 300_000);
  }
});
