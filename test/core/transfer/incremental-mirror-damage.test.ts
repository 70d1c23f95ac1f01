/**
 * Incremental mirrors whose halves are damaged or gone: every stored block is checked against its checksum before
 * a reconstruct gives anything out, a missing base or fast folder stops the update with the way back, and
 * `mirror resync --full` re-initializes the mirror. Real image files, base files and tape folders.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SnapplaneService } from '../../../core/service/index.js';
import { SnapplaneError } from '../../../core/common/errors.js';
import { Volume } from '../../../core/fs/volume.js';
import { expectSameTree, pattern } from '../../helpers/model.js';
import { snapshots, treeOf } from '../../helpers/replication.js';

let dir: string;
let n = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-incdamage-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function service(): SnapplaneService {
  return new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'state.json') });
}

async function writeFiles(src: string, names: string[], bytes: number, seed: number): Promise<void> {
  const v = await Volume.open(src, { cpIntervalMs: 0 });
  try {
    for (const [i, f] of names.entries()) await v.writeFile(`/${f}`, pattern(bytes, seed + i));
  } finally {
    await v.close();
  }
}

/** A source with three files, an incremental mirror of it initialized and updated once after three more. */
async function mirrored(slowKind: 'file' | 'tape' = 'file'): Promise<{ s: SnapplaneService; name: string; src: string; fast: string; slow: string; out: (tag: string) => string }> {
  const base = join(dir, `c${++n}`);
  const name = `inc${n}`;
  const src = `${base}-src.img`;
  const fast = `${base}-fast`;
  const slow = slowKind === 'file' ? `${base}-base.snap` : `${base}-tapes`;
  const s = service();
  await s.createVolume(src, 64 << 20);
  await s.closeAll();
  await writeFiles(src, ['f1', 'f2', 'f3'], 50_000, 1);
  await s.mirrorCreate(name, src, fast, { kind: 'incremental', slow: `${slowKind}:${slow}` });
  await s.mirrorUpdate(name);
  await s.closeAll();
  await writeFiles(src, ['f4', 'f5', 'f6'], 30_000, 10);
  await s.mirrorUpdate(name);
  await s.closeAll();
  return { s, name, src, fast, slow, out: (tag) => `${base}-${tag}.img` };
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

async function rejection(p: Promise<unknown>): Promise<SnapplaneError> {
  const e = await p.then(() => null, (x: unknown) => x);
  expect(e).toBeInstanceOf(SnapplaneError);
  return e as SnapplaneError;
}

/** VBNs of the 4 KiB blocks of `path` that hold something. */
async function nonZeroBlocks(path: string): Promise<number[]> {
  const b = await readFile(path);
  const out: number[] = [];
  for (let v = 0; v * 4096 < b.length; v++) if (b.subarray(v * 4096, (v + 1) * 4096).some((x) => x !== 0)) out.push(v);
  return out;
}

async function poke(path: string, at: number, bytes: Buffer): Promise<Buffer> {
  const fh = await open(path, 'r+');
  try {
    const old = Buffer.alloc(bytes.length);
    await fh.read(old, 0, bytes.length, at);
    await fh.write(bytes, 0, bytes.length, at);
    return old;
  } finally {
    await fh.close();
  }
}

describe('an incremental mirror checks what it stored', () => {
  it('a reconstruct from a damaged block file refuses, naming the file and the VBN, and leaves no volume; `mirror verify` finds the same', async () => {
    const { s, name, src, fast, out } = await mirrored();
    const blocks = join(fast, 'delta.blocks');
    const { current } = JSON.parse(await readFile(join(fast, 'delta.json'), 'utf8')) as { current: { name: string } };
    const want = await treeOf(src, current.name);
    let refused = 0;
    for (const vbn of await nonZeroBlocks(blocks)) {
      const old = await poke(blocks, vbn * 4096 + 100, Buffer.from([0x5a, 0x5a]));
      if (old.equals(Buffer.from([0x5a, 0x5a]))) continue;
      const target = out(`r${vbn}`);
      const e = await s.mirrorReconstruct(name, target).then(() => null, (x: unknown) => x);
      await s.closeAll();
      if (e) {
        expect(e).toBeInstanceOf(SnapplaneError);
        const err = e as SnapplaneError;
        expect(err.code).toBe('CHECKSUM');
        expect(err.vbn).toBe(vbn);
        expect(err.path).toBe(blocks);
        expect(err.message).toContain(`VBN ${vbn}`);
        expect(err.message).toContain(`mirror resync ${name} --full`);
        expect(await exists(target)).toBe(false);
        expect((await rejection(s.mirrorVerify(name))).vbn).toBe(vbn);
        refused++;
      } else {
        // A block the newest state no longer reads (freed, not yet compacted): the reconstruct is whole.
        expectSameTree(await treeOf(target), want, `reconstruct with stale VBN ${vbn} damaged`);
      }
      await poke(blocks, vbn * 4096 + 100, old);
    }
    expect(refused).toBeGreaterThanOrEqual(24);
    const ok = await s.mirrorVerify(name);
    expect(ok.unchecked).toBe(0);
    expect(ok.blocks).toBeGreaterThanOrEqual(refused);
  });

  it('a damaged base image stops the reconstruct before it keeps a half-made volume', async () => {
    const { s, name, slow, out } = await mirrored();
    const size = (await stat(slow)).size;
    await poke(slow, Math.floor(size / 2), Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]));
    const target = out('rbase');
    const e = await rejection(s.mirrorReconstruct(name, target));
    await s.closeAll();
    expect(['BAD_STREAM', 'CHECKSUM']).toContain(e.code);
    expect(e.message).toContain(`nothing was reconstructed into '${target}'`);
    expect(await exists(target)).toBe(false);
    expect((await readdir(dir)).filter((f) => f.startsWith(`c${n}-rbase`))).toEqual([]);
  });

  it('a version-1 structure (no checksums) still reconstructs and updates; what it stores from then on is checked', async () => {
    const { s, name, src, fast, out } = await mirrored();
    const state = JSON.parse(await readFile(join(fast, 'delta.json'), 'utf8')) as { version: number; presentBlocks: number };
    await writeFile(join(fast, 'delta.json'), JSON.stringify({ ...state, version: 1 }, null, 2));
    await rm(join(fast, 'delta.sums'));
    expect((await s.mirrorVerify(name)).unchecked).toBe(state.presentBlocks);
    const r1 = out('v1');
    const rec = await s.mirrorReconstruct(name, r1);
    await s.closeAll();
    expectSameTree(await treeOf(r1), await treeOf(src, rec.current), 'reconstruct of a version-1 structure');
    await writeFiles(src, ['f7'], 40_000, 20);
    const up = await s.mirrorUpdate(name);
    await s.closeAll();
    expect(JSON.parse(await readFile(join(fast, 'delta.json'), 'utf8')).version).toBe(2);
    const v = await s.mirrorVerify(name);
    expect(v.unchecked).toBeLessThan(v.blocks);
    const r2 = out('v2');
    await s.mirrorReconstruct(name, r2);
    await s.closeAll();
    expectSameTree(await treeOf(r2), await treeOf(src, up.to), 'reconstruct after an update of a version-1 structure');
  });
});

describe('an incremental mirror that lost a half', () => {
  it('a missing base stops the update and shows in the status; resync --full re-initializes the mirror', async () => {
    const { s, name, src, slow, out } = await mirrored();
    await rename(slow, `${slow}.moved`);
    const st = await s.mirrorStatus(name);
    expect(st.state).toBe('failed');
    expect(st.lastError).toContain(`the base image '${slow}' is missing`);
    await writeFiles(src, ['f7'], 20_000, 30);
    const e = await rejection(s.mirrorUpdate(name));
    await s.closeAll();
    expect(e.code).toBe('NOT_FOUND');
    expect(e.message).toContain(`the base image '${slow}' of incremental mirror '${name}' is missing`);
    expect(e.message).toContain(`mirror resync ${name} --full`);
    const plain = await rejection(s.mirrorResync(name));
    expect(plain.message).toContain(`mirror resync ${name} --full`);
    const r = await s.mirrorResync(name, { full: true });
    await s.closeAll();
    expect(r.transfer).toBe('full');
    expect((await s.mirrorStatus(name)).state).toBe('idle');
    // Only the new update's snapshot of the relationship is left on the source.
    expect((await snapshots(src)).map((x) => x.name).filter((x) => x.startsWith(`mirror.${name}.`))).toEqual([r.to]);
    await s.closeAll();
    const target = out('after-base');
    await s.mirrorReconstruct(name, target);
    await s.closeAll();
    expectSameTree(await treeOf(target), await treeOf(src, r.to), 'reconstruct after re-initializing');
  });

  it('a wiped fast folder stops the update with the way back; resync --full starts it again (a tape base too)', async () => {
    const { s, name, src, fast, slow, out } = await mirrored('tape');
    await rm(fast, { recursive: true });
    expect((await s.mirrorStatus(name)).lastError).toContain('holds no incremental mirror any more');
    const e = await rejection(s.mirrorUpdate(name));
    await s.closeAll();
    expect(e.code).toBe('NOT_FOUND');
    expect(e.message).toContain(`mirror resync ${name} --full`);
    // Its fast half is gone, so nothing tells the tapes are its base: the user moves them away first.
    const tapesInWay = await rejection(s.mirrorResync(name, { full: true }));
    expect(tapesInWay.code).toBe('EXISTS');
    for (const t of await readdir(slow)) await rm(join(slow, t));
    const r = await s.mirrorResync(name, { full: true });
    await s.closeAll();
    expect(r.transfer).toBe('full');
    await writeFiles(src, ['f8'], 20_000, 40);
    const up = await s.mirrorUpdate(name);
    await s.closeAll();
    // With its fast half there, a re-initialization replaces its own tapes by itself.
    const again = await s.mirrorResync(name, { full: true });
    await s.closeAll();
    expect(again.from).toBe(null);
    expect(up.transfer).toBe('incremental');
    const target = out('after-fast');
    await s.mirrorReconstruct(name, target);
    await s.closeAll();
    expectSameTree(await treeOf(target), await treeOf(src, again.to), 'reconstruct after re-initializing on tapes');
  });
});
