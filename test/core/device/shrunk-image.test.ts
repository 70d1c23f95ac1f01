/**
 * An image that shrinks while it is open (truncated or replaced under a running process). Its size was checked
 * whole at open, so a read that meets its end inside the volume is a fault: the device used to fill the rest with
 * zeros, and a send then carried those zeros under good stream checksums.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageFileDevice } from '../../../core/device/image-file-device.js';
import { alignedBufferSet } from '../../../core/common/aligned-buffers.js';
import { Volume } from '../../../core/fs/volume.js';
import { pattern } from '../../helpers/model.js';
import { useTempDir } from '../../helpers/temp-dir.js';

const B = 4096;
const dir = useTempDir('shrunk');

describe('an image that shrinks while open', () => {
  it('reads past its new end fail with IO naming the image and the block, through the cache and around it', async () => {
    const path = join(dir(), 'dev.img');
    const dev = await ImageFileDevice.create(path, 1024);
    try {
      await dev.writeBlocks(0, pattern(1024 * B, 1));
      await dev.flush();
      await truncate(path, 100 * B);
      expect((await dev.readBlocks(10, 4)).equals(pattern(1024 * B, 1).subarray(10 * B, 14 * B))).toBe(true);
      await expect(dev.readBlocks(98, 4)).rejects.toMatchObject({ code: 'IO', vbn: 100, message: expect.stringContaining(`image '${path}' ends before block 100 of its 1024`) });
      const [aligned] = alignedBufferSet(1, 8 * B);
      await expect(dev.readBlocksDirect(200, 8, aligned)).rejects.toMatchObject({ code: 'IO', vbn: 200, message: expect.stringContaining('truncated or replaced while open') });
    } finally {
      await dev.close();
    }
  });

  it('a send whose image is truncated mid-stream stops with a one-line IO error instead of sending zeros', async () => {
    const path = join(dir(), 'src.img');
    const v = await Volume.create(path, { sizeBytes: 256 << 20, cpIntervalMs: 0 });
    await v.writeFile('/big.bin', pattern(96 << 20, 2));
    await v.createSnapshot('s1');
    await v.close();
    const child = spawn(process.execPath, [join(process.cwd(), 'bin', 'snapplane.js'), 'send', path, 's1'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SNAPPLANE_HOME: join(dir(), 'home') } });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const closed = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    // Not read yet: the send fills the pipe and waits, with its read-ahead done; then the image loses its blocks.
    await new Promise<void>((r) => child.stdout!.once('readable', () => r()));
    await new Promise((r) => setTimeout(r, 300));
    await truncate(path, 1 << 20);
    let bytes = 0;
    child.stdout!.on('data', (d: Buffer) => (bytes += d.length));
    const code = await closed;
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/^snapplane: image '.*src\.img' ends before block \d+ of its 65536: it was truncated or replaced while open \(IO\)\n$/);
    expect(bytes).toBeLessThan(96 << 20);
  }, 60_000);
});
