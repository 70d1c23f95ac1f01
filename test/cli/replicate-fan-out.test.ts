/**
 * One source replicated to several destinations at once (a script's fan-out): every destination is recorded, so
 * each holds the masters it needs. Before `destinations.json.lock`, 8 at once kept 5 records: the 3 others'
 * holds were gone, and the master their next incremental needs could be deleted (a full copy again).
 */
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { ok, snapplane } from './cli-helpers.js';
import { useTempDir } from '../helpers/temp-dir.js';
import type { ReplicateReport } from '../../core/api/index.js';

const dir = useTempDir('fan-out');

describe('replicate to several destinations at once', () => {
  it('records all 8, and the first master stays held for the one that did not move on', async () => {
    process.env.SNAPPLANE_HOME = join(dir(), 'home');
    const src = join(dir(), 'src.img');
    await ok('volume', 'create', src, '--size', '32M');
    await ok('put', src, 'package.json', '/p.json');
    await ok('snap', 'create', src, 'mon');
    await ok('master', 'mark', src, 'mon');
    const dests = Array.from({ length: 8 }, (_, i) => join(dir(), `d${i + 1}.img`));
    const runs = await Promise.all(dests.map((d) => snapplane('replicate', src, d, '--json')));
    for (const r of runs) {
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect((JSON.parse(r.stdout) as ReplicateReport).to).toBe('mon');
    }
    const recorded = JSON.parse(await readFile(`${src}.destinations.json`, 'utf8')) as { destination: string; master: { name: string } }[];
    expect(recorded.map((d) => d.destination).sort()).toEqual([...dests].sort());
    expect(recorded.every((d) => d.master.name === 'mon')).toBe(true);

    // All but d1 move on to tue, again at once; mon stays held for d1 alone.
    await ok('put', src, 'README.md', '/r.md');
    await ok('snap', 'create', src, 'tue');
    await ok('master', 'mark', src, 'tue');
    const second = await Promise.all(dests.slice(1).map((d) => snapplane('replicate', src, d, '--json')));
    for (const r of second) {
      expect(r.stderr).toBe('');
      expect((JSON.parse(r.stdout) as ReplicateReport).kind).toBe('incremental');
    }
    const refused = await snapplane('snap', 'delete', src, 'mon');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain(`cannot delete master snapshot 'mon': ${dests[0]} has not moved past it yet`);
    // d1's next replication is still incremental from mon.
    const d1 = JSON.parse((await ok('replicate', src, dests[0]!, '--json')).stdout) as ReplicateReport;
    expect(d1).toMatchObject({ kind: 'incremental', from: 'mon', to: 'tue' });
    // Nothing is left locked beside the source.
    const left = (await import('node:fs')).readdirSync(dir()).filter((n) => n.startsWith('src.img.') && n !== 'src.img.destinations.json');
    expect(left).toEqual([]);
  }, 120_000);
});
