/** `snapplane raid fail|replace|scrub`: RAID-4 maintenance. */
import type { Command } from 'commander';
import { printJson } from '../output.js';
import { progressBar } from '../progress.js';
import { parseInteger, withService } from '../run.js';
import { printVolumeInfo } from './volume.js';

export function registerRaid(program: Command): void {
  const raid = program.command('raid').description('RAID-4 group maintenance: fail (drills), replace and rebuild, scrub');
  raid
    .command('fail <vol> <member>')
    .description('take a member out of the group (a drill); the volume runs degraded')
    .option('--json', 'print a JSON report')
    .action((vol: string, member: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        const info = await s.raidFail(vol, parseInteger(member, 'member'));
        if (opts.json) printJson(info);
        else printVolumeInfo(info);
      }),
    );
  raid
    .command('replace <vol> <member> <new-image>')
    .description('put a new image (created in the group folder) in place of a failed member and rebuild it')
    .option('--json', 'print a JSON report')
    .action((vol: string, member: string, image: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        const bar = progressBar(opts.json === true);
        try {
          const info = await s.raidReplace(vol, parseInteger(member, 'member'), image, bar);
          bar.stop();
          if (opts.json) printJson(info);
          else printVolumeInfo(info);
        } finally {
          bar.stop();
        }
      }),
    );
  raid
    .command('scrub <vol>')
    .description('verify every block checksum and the parity of every stripe that holds data, repairing from redundancy (exit 1 if anything is unrepairable)')
    .option('--json', 'print a JSON report')
    .action((vol: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        const bar = progressBar(opts.json === true);
        try {
          const r = await s.raidScrub(vol, bar);
          bar.stop();
          if (opts.json) printJson(r);
          else {
            for (const u of r.unrepairable) process.stdout.write(`unrepairable: ${u.message}\n`);
            process.stdout.write(
              `scrubbed ${r.stripes} stripes (parity checked on the ${r.stripesChecked} holding data): ${r.dataBlocksRepaired} data block(s) and ${r.parityStripesRepaired} parity stripe(s) repaired, ${r.unrepairable.length} unrepairable${r.degraded ? ' (group is DEGRADED: parity not checked)' : ''}\n`,
            );
          }
          return r.clean ? 0 : 1;
        } finally {
          bar.stop();
        }
      }),
    );
}
