import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFile, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Volume } from '../../../core/fs/volume.js';
import { SnapplaneError } from '../../../core/common/errors.js';
import { walkTree } from '../../../core/fs/walk.js';
import { pattern } from '../../helpers/model.js';
import { rng } from '../../helpers/recording-device.js';

let dir: string;
let pristine: string;
/** Data VBNs of every file, and the inode of each. */
const owners = new Map<number, string>();
const files = new Map<string, Buffer>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-corrupt-'));
  pristine = join(dir, 'pristine.img');
  const v = await Volume.create(pristine, { sizeBytes: 8 * 2 ** 20, cpIntervalMs: 0, lock: false });
  for (let i = 0; i < 12; i++) {
    const data = pattern(3000 + i * 20_000, i);
    files.set(`/f${i}`, data);
    await v.writeFile(`/f${i}`, data);
  }
  await v.sync();
  const internal = v as unknown as { ns: { resolve(p: string): Promise<{ inode: Parameters<typeof walkTree>[0] }> }; ctx: Parameters<typeof walkTree>[1] };
  for (const path of files.keys()) {
    const r = await internal.ns.resolve(path);
    await walkTree(r.inode, internal.ctx, path, (p, level) => {
      if (level === 0) owners.set(p.vbn, path);
    });
  }
  await v.close();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function flipBit(image: string, byteOffset: number, bit: number): Promise<void> {
  const fh = await open(image, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, byteOffset);
  b[0] ^= 1 << bit;
  await fh.write(b, 0, 1, byteOffset);
  await fh.close();
}

describe('corruption', () => {
  it('a flipped bit in any used data block: reads fail with CHECKSUM naming file and VBN, fsck reports it, nothing wrong is returned', async () => {
    const random = rng(42);
    const vbns = [...owners.keys()];
    for (let trial = 0; trial < 40; trial++) {
      const image = join(dir, `t${trial}.img`);
      await copyFile(pristine, image);
      const victims = new Set<number>();
      for (let k = 0; k < 1 + Math.floor(random() * 3); k++) victims.add(vbns[Math.floor(random() * vbns.length)]);
      for (const vbn of victims) await flipBit(image, vbn * 4096 + Math.floor(random() * 4096), Math.floor(random() * 8));
      const v = await Volume.open(image, { readOnly: true });
      const hit = new Set([...victims].map((x) => owners.get(x)!));
      for (const [path, data] of files) {
        if (hit.has(path)) {
          try {
            await v.readFile(path);
            throw new Error(`trial ${trial}: corrupted ${path} was read`);
          } catch (e) {
            const err = e as SnapplaneError;
            expect(err.code, `trial ${trial}`).toBe('CHECKSUM');
            expect(err.path).toBe(path);
            expect(victims.has(err.vbn!)).toBe(true);
            expect(err.message).toContain(path);
            expect(err.message).toContain(`VBN ${err.vbn}`);
          }
        } else {
          expect((await v.readFile(path)).equals(data), `trial ${trial}: ${path}`).toBe(true);
        }
      }
      const report = await v.fsck();
      expect(report.clean).toBe(false);
      const reported = new Set(report.issues.filter((i) => i.kind === 'checksum').map((i) => i.vbn));
      for (const vbn of victims) expect(reported.has(vbn), `trial ${trial}: VBN ${vbn} reported`).toBe(true);
      await v.close();
      await rm(image);
    }
  });

  it('a corrupted metadata block (inode file) fails reads of what it describes and fsck says where', async () => {
    const image = join(dir, 'meta.img');
    await copyFile(pristine, image);
    const probe = await Volume.open(image, { readOnly: true });
    const internal = probe as unknown as { fsinfo: { inodeFile: Parameters<typeof walkTree>[0] } };
    const vbn = internal.fsinfo.inodeFile.pointers[0].vbn;
    await probe.close();
    await flipBit(image, vbn * 4096 + 300, 3);
    const v = await Volume.open(image, { readOnly: true });
    await expect(v.readdir('/')).rejects.toMatchObject({ code: 'CHECKSUM', vbn });
    const report = await v.fsck();
    expect(report.issues.some((i) => i.kind === 'checksum' && i.vbn === vbn)).toBe(true);
    await v.close();
  });

  it('one corrupted fsinfo copy: the volume opens from the other and repairs it; both: BAD_FORMAT', async () => {
    const image = join(dir, 'fsinfo.img');
    await copyFile(pristine, image);
    await flipBit(image, 100, 1);
    const v = await Volume.open(image, { lock: false });
    expect((await v.readFile('/f3')).equals(files.get('/f3')!)).toBe(true);
    const report = await v.fsck();
    expect(report.issues).toEqual([]);
    await v.close();
    await flipBit(image, 4096 + 200, 2);
    await flipBit(image, 300, 5);
    await expect(Volume.open(image, { readOnly: true })).rejects.toMatchObject({ code: 'BAD_FORMAT' });
  });
  it('an unreadable indirect block is one leak finding for the blocks under it, not one each; a damaged block map still gives a report and the files still read', async () => {
    const image = join(dir, 'indirect.img');
    const v = await Volume.create(image, { sizeBytes: 16 * 2 ** 20, cpIntervalMs: 0, lock: false });
    const big = pattern(3 * 2 ** 20, 7);
    await v.writeFile('/big', big);
    await v.writeFile('/small', pattern(5000, 8));
    await v.sync();
    const internal = v as unknown as { ns: { resolve(p: string): Promise<{ inode: Parameters<typeof walkTree>[0] }> }; ctx: Parameters<typeof walkTree>[1]; fsinfo: { blockMap: Parameters<typeof walkTree>[0] } };
    const indirect: number[] = [];
    await walkTree((await internal.ns.resolve('/big')).inode, internal.ctx, '/big', (p, level) => {
      if (level > 0) indirect.push(p.vbn);
    });
    const mapBlocks: number[] = [];
    await walkTree(internal.fsinfo.blockMap, internal.ctx, 'block map', (p) => mapBlocks.push(p.vbn));
    await v.close();
    expect(indirect.length).toBeGreaterThan(0);

    const damaged = join(dir, 'indirect-damaged.img');
    await copyFile(image, damaged);
    await flipBit(damaged, indirect[indirect.length - 1] * 4096 + 10, 3);
    let r = await Volume.open(damaged, { readOnly: true });
    const report = await r.fsck();
    await r.close();
    expect(report.issues.filter((i) => i.kind === 'checksum').map((i) => i.vbn)).toEqual([indirect[indirect.length - 1]]);
    const leaks = report.issues.filter((i) => i.kind === 'leak');
    expect(leaks).toHaveLength(1);
    expect(leaks[0].message).toMatch(/^\d+ blocks \(VBN \d+ to \d+\) are set in the active plane but no tree that could be read uses them: most likely the blocks under the unreadable block above$/);

    const mapDamaged = join(dir, 'map-damaged.img');
    await copyFile(image, mapDamaged);
    await flipBit(mapDamaged, mapBlocks[0] * 4096 + 10, 3);
    r = await Volume.open(mapDamaged, { readOnly: true });
    const mapReport = await r.fsck();
    expect((await r.readFile('/big')).equals(big)).toBe(true);
    await r.close();
    expect(mapReport.clean).toBe(false);
    expect(mapReport.issues[0]).toMatchObject({ kind: 'checksum', path: 'block map', message: expect.stringMatching(/^planes not checked: checksum mismatch in 'block map'/) });
    expect(mapReport.stats).toMatchObject({ files: 2, planesChecked: 0 });
  });
});
