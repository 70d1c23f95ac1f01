import { describe, expect, it } from 'vitest';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { json, ok } from '../../cli/cli-helpers.js';
import { Volume } from '../../../core/fs/volume.js';
import { openDeviceAt } from '../../../core/raid/open-device.js';
import type { FsckReport } from '../../../core/api/index.js';
import { useTempDir } from '../../helpers/temp-dir.js';
import { pattern } from '../../helpers/model.js';

const tmp = useTempDir('raid-fsck');

describe('fsck of a RAID-4 group whose member holds bad copies', () => {
  it('says how many blocks it rebuilt from parity and on which member, instead of a bare clean; opened for writing it rewrites them', async () => {
    process.env.SNAPPLANE_HOME = join(tmp(), 'home');
    const group = join(tmp(), 'g');
    await ok('volume', 'create', group, '--raid', '3', '--size', '16M');
    const host = join(tmp(), 'a.bin');
    await writeFile(host, pattern(3_000_000, 8));
    await ok('put', group, host, '/a.bin');
    // 20 blocks of member 1 overwritten in place (disk blocks 60..79: stripes 51..70, inside the file's data).
    const fh = await open(join(group, 'data-1.img'), 'r+');
    await fh.write(pattern(20 * 4096, 99), 0, 20 * 4096, 60 * 4096);
    await fh.close();

    const report = await json<FsckReport>('fsck', group);
    expect(report.clean).toBe(true);
    expect(report.rebuiltFromParity).toEqual([{ member: 1, path: join(group, 'data-1.img'), blocks: 20, rewritten: false }]);
    const human = await ok('fsck', group);
    expect(human.stdout).toContain(`rebuilt from parity: 20 blocks whose copy on member 1 (${join(group, 'data-1.img')}) failed their checksums; not rewritten (fsck only reads): \`snapplane raid scrub ${group}\` rewrites them\n`);

    // Open for writing, fsck rewrites what it rebuilt; then nothing is left to rebuild.
    const v = await Volume.open(group, { cpIntervalMs: 0, openDevice: openDeviceAt });
    expect((await v.fsck()).rebuiltFromParity).toEqual([{ member: 1, path: join(group, 'data-1.img'), blocks: 20, rewritten: true }]);
    await v.close();
    const after = await json<FsckReport>('fsck', group);
    expect(after.clean).toBe(true);
    expect(after).not.toHaveProperty('rebuiltFromParity');
    expect((await ok('fsck', group)).stdout).not.toContain('rebuilt from parity');
  }, 60_000);
});
