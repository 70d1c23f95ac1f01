/**
 * A long-lived service (the console, `snapplane daemon`) keeps volumes it reads open. When another process commits
 * to such a volume, the next call sees the new state instead of answering from the old one.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SnapplaneService } from '../../../core/service/index.js';
import { Volume } from '../../../core/fs/volume.js';
import { pattern } from '../../helpers/model.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-stale-views-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** What another process does: open for writing, change, commit, close. */
async function elsewhere(path: string, change: (v: Volume) => Promise<void>): Promise<void> {
  const v = await Volume.open(path, { cpIntervalMs: 0 });
  await change(v);
  await v.close();
}

describe('read-only volumes a service keeps open', () => {
  it('show what another process committed since', async () => {
    const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'a.json') });
    const vol = join(dir, 'a.img');
    await s.createVolume(vol, 8 << 20);
    await s.closeAll();
    expect(await s.snapList({ volume: vol })).toEqual([]);
    expect(await s.ls({ volume: vol }, '/')).toEqual([]);
    await elsewhere(vol, async (v) => {
      await v.writeFile('/new.bin', pattern(10_000, 1));
      await v.createSnapshot('x');
    });
    expect((await s.snapList({ volume: vol })).map((x) => x.name)).toEqual(['x']);
    expect((await s.ls({ volume: vol }, '/')).map((e) => e.name)).toEqual(['new.bin']);
    await s.closeAll();
  });

  it('let a long-lived replicator see a master marked by another process (no silent "none")', async () => {
    const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'b.json') });
    const src = join(dir, 'b.img');
    const dest = join(dir, 'b-copy.img');
    await s.createVolume(src, 8 << 20);
    await s.closeAll();
    await elsewhere(src, async (v) => {
      await v.writeFile('/one.bin', pattern(20_000, 2));
      await v.createSnapshot('m1');
      await v.setSnapshotFlags('m1', { master: true });
    });
    expect((await s.replicate(src, dest)).kind).toBe('full');
    await elsewhere(src, async (v) => {
      await v.writeFile('/two.bin', pattern(20_000, 3));
      await v.createSnapshot('m2');
      await v.setSnapshotFlags('m2', { master: true });
    });
    // Same service, source still open from the first replication.
    expect(await s.replicate(src, dest)).toMatchObject({ kind: 'incremental', from: 'm1', to: 'm2' });
    await s.closeAll();
  });

  it('read again on their own when the other process reuses blocks under a read (get, ls, fsck): one state, never a mix, never CHECKSUM', async () => {
    const s = new SnapplaneService({ cpIntervalMs: 0, stateFile: join(dir, 'c.json') });
    const vol = join(dir, 'c.img');
    // Little room beyond two copies of /a, so the writer's third file has to reuse the old /a's blocks.
    await s.createVolume(vol, 44 << 20);
    const oldA = pattern(16 << 20, 5);
    const newA = pattern(16 << 20, 6);
    await s.writeFile(vol, '/a', oldA);
    await s.closeAll();
    await writeFile(join(dir, 'new-a'), newA);
    await writeFile(join(dir, 'c'), pattern(16 << 20, 7));
    // The writer runs as another process while the read is stopped half-way (the progress callback blocks):
    // it replaces /a (its old blocks come free at the CP) and writes /c into them.
    const bin = join(process.cwd(), 'bin', 'snapplane.js');
    let writes = 0;
    const summary = await s.get({ volume: vol }, '/a', join(dir, 'got-a'), (p) => {
      if (p.done === 0 || writes > 0) return;
      writes++;
      execFileSync(process.execPath, [bin, 'put', vol, join(dir, 'new-a'), '/a']);
      execFileSync(process.execPath, [bin, 'put', vol, join(dir, 'c'), '/c']);
    });
    expect(writes).toBe(1);
    expect(summary.bytes).toBe(newA.length);
    expect((await readFile(join(dir, 'got-a'))).equals(newA)).toBe(true);
    expect((await s.ls({ volume: vol }, '/')).map((e) => e.name).sort()).toEqual(['a', 'c']);
    expect((await s.fsck(vol)).clean).toBe(true);
    await s.closeAll();
  });
});
