/**
 * The console's router on the real engine: every method validates its arguments (random ones, from fast-check,
 * answer a validation error and never a crash), errors keep their codes, and the grid's tiles and block owners
 * agree with image evaluation and the file tree.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METHOD_NAMES, methodArgs, type BlockInfo, type ImageEvalReport, type PlaneTiles, type Reply } from '../../../core/api/index.js';
import { ConsoleHost } from '../../../core/service/index.js';

let dir: string;
let host: ConsoleHost;
let vol: string;
const cwd = process.cwd();

async function call<T>(method: string, args: unknown): Promise<T> {
  const r = await host.router.call(method, args);
  if (!r.ok) throw new Error(`${method}: ${r.error.code} ${r.error.message}`);
  return r.result as T;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-router-'));
  // Random calls may name relative paths: refused, but should one slip through it lands in the temp folder.
  process.chdir(dir);
  host = await ConsoleHost.start({ transport: 'direct', stateFile: join(dir, 'state.json'), schedulerIntervalMs: 0 });
  vol = join(dir, 'v.img');
  await call('volumeCreate', { path: vol, sizeBytes: 4 * 2 ** 20 });
  await call('writeFile', { volume: vol, path: '/a.bin', base64: Buffer.alloc(100_000, 7).toString('base64') });
  await call('mkdir', { volume: vol, path: '/docs' });
  await call('writeFile', { volume: vol, path: '/docs/b.txt', base64: Buffer.from('b'.repeat(9000)).toString('base64') });
  await call('snapCreate', { volume: vol, name: 's1' });
  await call('rm', { volume: vol, path: '/a.bin' });
  await call('writeFile', { volume: vol, path: '/c.bin', base64: Buffer.alloc(50_000, 3).toString('base64') });
  await call('snapCreate', { volume: vol, name: 's2' });
});

afterAll(async () => {
  await host.close();
  process.chdir(cwd);
  await rm(dir, { recursive: true, force: true });
});

function decode(b64: string): Uint8Array {
  return new Uint8Array(Buffer.from(b64, 'base64'));
}

describe('router', () => {
  it('answers unknown methods and bad arguments with INVALID, naming the argument', async () => {
    const unknown = await host.router.call('nosuch', {});
    expect(unknown).toMatchObject({ ok: false, error: { code: 'INVALID' } });
    const proto = await host.router.call('__proto__', {});
    expect(proto).toMatchObject({ ok: false, error: { code: 'INVALID' } });
    const bad = await host.router.call('ls', { volume: 3, path: '/' });
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.error.code).toBe('INVALID');
      expect(bad.error.issues?.[0].path).toBe('volume');
    }
    const extra = await host.router.call('volumeInfo', { volume: vol, evil: true });
    expect(extra).toMatchObject({ ok: false, error: { code: 'INVALID' } });
    const nul = await host.router.call('volumeInfo', { volume: `${vol}\0x` });
    expect(nul).toMatchObject({ ok: false, error: { code: 'INVALID' } });
  });

  it('passes engine errors through with their codes', async () => {
    const r = await host.router.call('snapDelete', { volume: vol, name: 'nosuch' });
    expect(r).toMatchObject({ ok: false, error: { code: 'NOT_FOUND', volume: vol } });
    const e = await host.router.call('imageEval', { volume: vol, expression: 's2 - s9' });
    expect(r.ok).toBe(false);
    if (!e.ok) expect(e.error.message).toMatch(/unknown snapshot 's9'.*did you mean/);
  });

  it('builds plane tiles whose densities agree with the planes and image evaluation', async () => {
    const planes = await call<{ plane: number; name: string; blocks: number }[]>('planes', { volume: vol });
    const ids = planes.map((p) => p.plane);
    const t = await call<PlaneTiles>('planeTiles', { volume: vol, firstVbn: 0, blocksPerRow: 1, rows: 1024, planes: ids, expression: 's1 - s2' });
    const d = decode(t.densities);
    expect(t.validRows).toBe(1024);
    for (let k = 0; k < ids.length; k++) {
      const set = d.subarray(k * 1024, (k + 1) * 1024).filter((x) => x > 0).length;
      expect(set).toBe(planes[k].blocks);
      expect(t.counts[k]).toBe(planes[k].blocks);
      // One block per row: a set cell is fully set.
      for (const x of d.subarray(k * 1024, (k + 1) * 1024)) expect([0, 255]).toContain(x);
    }
    const image = await call<ImageEvalReport>('imageEval', { volume: vol, expression: 's1 - s2' });
    expect(decode(t.image!).filter((x) => x > 0).length).toBe(image.blocks);
    expect(t.imageBlocks).toBe(image.blocks);
    // Aggregated rows: 64 blocks per row; counts add up, densities are proportional and never 0 for a used row.
    const agg = await call<PlaneTiles>('planeTiles', { volume: vol, firstVbn: 0, blocksPerRow: 64, rows: 16, planes: ids });
    expect(agg.counts).toEqual(t.counts);
    const ad = decode(agg.densities);
    for (let k = 0; k < ids.length; k++) {
      for (let r = 0; r < 16; r++) {
        const n = d.subarray(k * 1024 + r * 64, k * 1024 + r * 64 + 64).filter((x) => x > 0).length;
        expect(ad[k * 16 + r] > 0).toBe(n > 0);
        if (n === 64) expect(ad[k * 16 + r]).toBe(255);
      }
    }
    // Rows past the end of the volume (1024 blocks) are empty and not counted as valid.
    const end = await call<PlaneTiles>('planeTiles', { volume: vol, firstVbn: 1000, blocksPerRow: 8, rows: 10, planes: [0] });
    expect(end.validRows).toBe(3);
    expect([...decode(end.densities)].slice(3)).toEqual([0, 0, 0, 0, 0, 0, 0]);
  });

  it('tells which file owns a block, in the active file system or in the snapshot that still holds it', async () => {
    const planes = await call<{ plane: number }[]>('planes', { volume: vol });
    const t = await call<PlaneTiles>('planeTiles', { volume: vol, firstVbn: 0, blocksPerRow: 1, rows: 1024, planes: planes.map((p) => p.plane) });
    const d = decode(t.densities);
    const onlyS1 = Array.from({ length: 1024 }, (_, v) => v).filter((v) => d[1024 + v] > 0 && d[2048 + v] === 0 && d[v] === 0);
    const owners = new Set<string | null>();
    for (const v of onlyS1) {
      const info = await call<BlockInfo>('blockInfo', { volume: vol, vbn: v });
      expect(info.planes.map((p) => p.name)).toEqual(['s1']);
      if (info.owner?.kind === 'file') owners.add(info.owner.path);
      expect(info.owner?.state).toBe('s1');
    }
    expect(owners.has('/a.bin')).toBe(true);
    const reserved = await call<BlockInfo>('blockInfo', { volume: vol, vbn: 0 });
    expect(reserved.owner?.kind).toBe('reserved');
    expect(reserved.planes.map((p) => p.name)).toEqual(['active', 's1', 's2']);
    // A range reports its first used block.
    const range = await call<BlockInfo>('blockInfo', { volume: vol, vbn: 900, count: 124 });
    expect(range.owner).toBeNull();
    expect(range.planes).toEqual([]);
    const past = await host.router.call('blockInfo', { volume: vol, vbn: 5000 });
    expect(past).toMatchObject({ ok: false, error: { code: 'INVALID' } });
    // The active file system's files are found too.
    const cBlocks = Array.from({ length: 1024 }, (_, v) => v).filter((v) => d[v] > 0 && d[1024 + v] === 0);
    const found = new Set<string | null>();
    for (const v of cBlocks) found.add((await call<BlockInfo>('blockInfo', { volume: vol, vbn: v })).owner?.path ?? null);
    expect(found.has('/c.bin')).toBe(true);
  });

  it('previews a revert with what it loses', async () => {
    const p = await call<{ added: string[]; removed: string[]; laterSnapshots: string[] }>('revertPreview', { volume: vol, snapshot: 's1' });
    expect(p.added).toContain('/c.bin');
    expect(p.removed).toContain('/a.bin');
    expect(p.laterSnapshots).toEqual(['s2']);
  });

  it('saves, lists and deletes images; lists and forgets volumes', async () => {
    const saved = await call<{ name: string; expression: string }[]>('imageSave', { volume: vol, name: 'gone', expression: 's1 - s2' });
    expect(saved).toEqual([expect.objectContaining({ name: 'gone' })]);
    expect((await host.router.call('imageSave', { volume: vol, name: 'bad', expression: 's1 -' })).ok).toBe(false);
    expect(await call('imageDelete', { volume: vol, name: 'gone' })).toEqual([]);
    const list = await call<{ path: string; info: unknown }[]>('volumeList', {});
    expect(list.map((v) => v.path)).toContain(vol);
  });

  it('refuses relative host paths, naming the path, and makes nothing in the folder the host was started in', async () => {
    const before = await readdir(dir);
    const refused = async (method: string, args: unknown, path: string): Promise<void> => {
      const r = await host.router.call(method, args);
      expect(r, `${method} ${JSON.stringify(args)}`).toMatchObject({ ok: false, error: { code: 'INVALID', message: `'${path}' is not a full path: give a full path, e.g. /data/vol.img`, path } });
    };
    await refused('volumeCreate', { path: 'relative.img', sizeBytes: 4 << 20 }, 'relative.img');
    await refused('volumeOpen', { path: 'sub/v.img' }, 'sub/v.img');
    await refused('volumeInfo', { volume: 'v.img' }, 'v.img');
    await refused('put', { volume: vol, hostPath: '~/notes.txt', path: '/' }, '~/notes.txt');
    await refused('jobStart', { kind: 'copy', source: vol, destination: 'copy.img', expression: 's2' }, 'copy.img');
    await refused('jobStart', { kind: 'backup', volume: vol, expression: 's2', file: 'v.level0' }, 'v.level0');
    await refused('jobStart', { kind: 'restore', volume: join(dir, 'r.img'), files: ['./v.level0'] }, './v.level0');
    await refused('jobStart', { kind: 'replicate', source: vol, destination: 'replica.img' }, 'replica.img');
    await refused('mirrorCreate', { name: 'm', source: vol, destination: 'mirror.img', kind: 'full' }, 'mirror.img');
    await refused('mirrorCreate', { name: 'm', source: vol, destination: join(dir, 'm.img'), kind: 'incremental', slow: 'file:base' }, 'base');
    await refused('mirrorSet', { name: 'm', keyFile: 'psk' }, 'psk');
    expect(await readdir(dir)).toEqual(before);
    // Paths inside a volume and remote destinations are not host paths: a backup file inside a volume may be relative to it.
    const remote = await host.router.call('mirrorCreate', { name: 'far', source: vol, destination: 'backup-host:7000/vol', kind: 'full' });
    expect(remote).toMatchObject({ ok: false, error: { message: "'backup-host:7000/vol' is remote: give its pre-shared key file (--key-file)" } });
    const inside = await host.router.call('jobStart', { kind: 'verify', files: ['v.level0'], inVolume: vol });
    expect(inside.ok || !/not a full path/.test(inside.error.message)).toBe(true);
  });

  it('answers every method called with random arguments, with a validation error when they are invalid', async () => {
    for (const method of METHOD_NAMES) {
      await fc.assert(
        fc.asyncProperty(fc.anything({ withNullPrototype: true, withBigInt: true, withDate: true, withTypedArray: true, withSparseArray: true, maxDepth: 3 }), async (args) => {
          const r: Reply = await host.router.call(method, args);
          expect(typeof r.ok).toBe('boolean');
          expect(() => JSON.stringify(r)).not.toThrow();
          if (!methodArgs[method].safeParse(args ?? {}).success) {
            expect(r.ok).toBe(false);
            if (!r.ok) expect(r.error.code).toBe('INVALID');
          }
        }),
        { numRuns: 25 },
      );
    }
  });

  it('answers argument objects with the right keys and random values without crashing', async () => {
    const value = fc.oneof(fc.stringMatching(/^[a-z0-9 ._-]{0,12}$/), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.array(fc.integer(), { maxLength: 3 }), fc.constant('\0'), fc.constant('../../etc'));
    for (const method of METHOD_NAMES) {
      const shape = (methodArgs[method] as unknown as { shape?: Record<string, unknown> }).shape ?? { kind: 1, volume: 1, name: 1 };
      const keys = Object.keys(shape);
      await fc.assert(
        fc.asyncProperty(fc.dictionary(fc.constantFrom(...(keys.length ? keys : ['x'])), value), async (args) => {
          const r = await host.router.call(method, args);
          expect(typeof r.ok).toBe('boolean');
          if (!r.ok) expect(typeof r.error.code).toBe('string');
          if (!methodArgs[method].safeParse(args).success && !r.ok) expect(r.error.code).toBe('INVALID');
        }),
        { numRuns: 20 },
      );
    }
    // The engine is still fine.
    expect((await call<{ name: string }[]>('snapList', { volume: vol })).map((s) => s.name)).toEqual(['s1', 's2']);
  });
});
