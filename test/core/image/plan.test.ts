import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SnapplaneService } from '../../../core/service/index.js';
import { pattern } from '../../helpers/model.js';

let dir: string;
let clock = Date.parse('2026-06-01T00:00:00Z');
let s: SnapplaneService;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'snapplane-plan-'));
  s = new SnapplaneService({ cpIntervalMs: 0, now: () => clock, stateFile: join(dir, 'state.json') });
});
afterAll(async () => {
  await s.closeAll();
  await rm(dir, { recursive: true, force: true });
});

describe('level planning', () => {
  it('plans the seed-style levels from real planes, sizes match the streams, and the restore chain restores the date', async () => {
    const vol = join(dir, 'june.img');
    await s.createVolume(vol, 64 * 2 ** 20);
    for (let d = 1; d <= 7; d++) {
      clock = Date.parse(`2026-06-0${d}T23:00:00Z`);
      const host = join(dir, `h${d}`);
      await mkdir(host, { recursive: true });
      await writeFile(join(host, 'day.bin'), pattern(100_000 + d * 20_000, d));
      await s.put(vol, host, `/day${d}`);
      await s.snapCreate(vol, `June${d}`);
    }
    const plan = await s.imagePlan(vol, '0=7d,1=2d,2=1d', '2026-06-06T23:30:00Z');
    expect(plan.points.map((p) => [p.snapshot, p.level, p.expression])).toEqual([
      ['June1', 0, 'June1'],
      ['June2', 2, 'June2 - June1'],
      ['June3', 1, 'June3 + June2 - June1'],
      ['June4', 2, 'June4 - June3'],
      ['June5', 1, 'June5 + June4 + June3 + June2 - June1'],
      ['June6', 2, 'June6 - June5'],
      ['June7', 1, 'June7 + June6 + June5 + June4 + June3 + June2 - June1'],
    ]);
    expect(plan.restore!.chain).toEqual(['June1.level0', 'June5.level1', 'June6.level2']);
    // Each size is exactly what the stream carries.
    for (const p of plan.points) expect((await s.sendDryRun(vol, p.expression)).dataBytes, p.expression).toBe(p.bytes);
    // The chain restores June6.
    const files = [];
    for (const p of plan.points.filter((x) => ['June1', 'June5', 'June6'].includes(x.snapshot))) {
      const f = join(dir, `${p.snapshot}.level${p.level}`);
      await s.sendToFile(vol, p.expression, f);
      files.push(f);
    }
    const restored = join(dir, 'restored.img');
    const reports = await s.restore(restored, files);
    expect(reports.at(-1)!.current).toBe('June6');
    await s.get({ volume: restored }, '/day6', join(dir, 'out6'));
    expect((await readFile(join(dir, 'out6', 'day.bin'))).equals(pattern(220_000, 6))).toBe(true);
    expect((await s.fsck(restored)).clean).toBe(true);
  }, 60_000);

  it('refuses bad policies with the reason', async () => {
    const vol = join(dir, 'june.img');
    await expect(s.imagePlan(vol, '0=1d,1=7d')).rejects.toThrow(/must not be rarer/);
    await expect(s.imagePlan(vol, '1=1d')).rejects.toThrow(/without gaps/);
    await expect(s.imagePlan(vol, '0=often')).rejects.toThrow(/bad interval/);
    await expect(s.imagePlan(vol, '0=7d', 'yesterday')).rejects.toThrow(/bad date/);
  });
});
