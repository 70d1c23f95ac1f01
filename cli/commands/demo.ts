/**
 * `snapplane demo`: what `npm start` runs until the console lands. It builds a real volume with a week of
 * generated history (files changing day by day, a snapshot each evening) and shows what the engine reports.
 */
import type { Command } from 'commander';
import { mkdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { buildDemoVolume, formatBytes } from '../../core/service/index.js';
import { printTable } from '../output.js';
import { withService } from '../run.js';
import { printVolumeInfo } from './volume.js';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('build (once) a demo volume with a week of snapshots and show what the engine reports')
    .option('--dir <folder>', 'where to keep the demo volume', process.env.SNAPPLANE_HOME ?? 'snapplane-demo')
    .action((opts: { dir: string }) =>
      withService(async (s) => {
        const folder = resolve(opts.dir);
        const volume = join(folder, 'demo.img');
        await mkdir(folder, { recursive: true });
        const exists = await stat(volume).then(
          () => true,
          () => false,
        );
        if (!exists) {
          process.stdout.write(`Building a demo volume with a week of history at ${volume} ...\n\n`);
          await buildDemoVolume(volume);
        } else {
          process.stdout.write(`Using the demo volume at ${volume}\n\n`);
        }
        printVolumeInfo(await s.volumeInfo({ volume }));
        process.stdout.write('\nSnapshots (one bit plane each):\n');
        const snaps = await s.snapList({ volume });
        printTable(
          ['NAME', 'CREATED', 'PLANE', 'BLOCKS', 'HELD ALONE'],
          snaps.map((x) => [x.name, x.createdAt.slice(0, 16).replace('T', ' '), x.plane, x.blocks, formatBytes(x.uniqueBytes)]),
        );
        if (snaps.length >= 2) {
          const a = snaps[snaps.length - 3] ?? snaps[0];
          const b = snaps[snaps.length - 1];
          const d = await s.snapDiff(volume, a.name, b.name);
          process.stdout.write(`\nWhat changed from ${a.name} to ${b.name}:\n`);
          for (const p of d.added) process.stdout.write(`  + ${p}\n`);
          for (const p of d.changed) process.stdout.write(`  M ${p}\n`);
          for (const p of d.removed) process.stdout.write(`  - ${p}\n`);
        }
        const fsck = await s.fsck(volume);
        process.stdout.write(`\nfsck: ${fsck.clean ? 'clean' : `${fsck.issues.length} issue(s)`} (${fsck.stats.files} files, ${fsck.stats.snapshotsChecked} snapshots checked)\n`);
        const cli = 'npx snapplane';
        process.stdout.write(
          `\nTry next:\n  ${cli} ls ${volume}@June3 /home\n  ${cli} snap diff ${volume} June1 June7\n  ${cli} get ${volume}@June1 /home/day1 ./restored-day1\n  ${cli} snap restore ${volume} June2 /home/day1/photos\n  ${cli} space ${volume} --delete June1,June2\n  ${cli} planes ${volume}\n`,
        );
      }),
    );
}
