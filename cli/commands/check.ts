/** `snapplane fsck`, `planes`, `space`: checking and accounting. */
import type { Command } from 'commander';
import { formatBytes } from '../../core/service/index.js';
import { counted, printJson, printTable } from '../output.js';
import { withService } from '../run.js';

export function registerCheck(program: Command): void {
  program
    .command('fsck <vol>')
    .description('verify every invariant: references, planes, checksums, snapshots, fsinfo copies (exit 0 only when clean)')
    .option('--json', 'print a JSON report')
    .action((vol: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        const r = await s.fsck(vol);
        if (opts.json) printJson(r);
        else {
          for (const i of r.issues) process.stdout.write(`${i.kind}: ${i.message}\n`);
          for (const b of r.rebuiltFromParity ?? []) {
            const after = b.rewritten ? 'rewritten there' : `not rewritten (fsck only reads): \`snapplane raid scrub ${vol}\` rewrites them`;
            process.stdout.write(`rebuilt from parity: ${counted(b.blocks, 'block')} whose copy on member ${b.member} (${b.path}) failed ${b.blocks === 1 ? 'its checksum' : 'their checksums'}; ${after}\n`);
          }
          process.stdout.write(
            `${r.clean ? 'clean' : counted(r.issues.length, 'issue')}: ${counted(r.stats.files, 'file')}, ${counted(r.stats.dirs, 'folder')}, ${counted(r.stats.symlinks, 'link')}, ${counted(r.stats.blocksReferenced, 'block')}, ${counted(r.stats.snapshotsChecked, 'snapshot')} checked (CP #${r.generation})\n`,
          );
        }
        return r.clean ? 0 : 1;
      }),
    );
  program
    .command('planes <vol>')
    .description('per bit plane: name, blocks set, blocks held only by it')
    .option('--json', 'print a JSON report')
    .action((vol: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        const planes = await s.planes(vol);
        if (opts.json) return printJson(planes);
        printTable(
          ['PLANE', 'NAME', 'KIND', 'BLOCKS', 'UNIQUE'],
          planes.map((p) => [p.plane, p.name, p.kind, p.blocks, p.uniqueBlocks]),
        );
      }),
    );
  program
    .command('space <vol>')
    .description('exact space held by snapshots, and what deleting a set of them would free')
    .option('--delete <snaps>', 'comma-separated snapshots whose deletion to evaluate')
    .option('--json', 'print a JSON report')
    .action((vol: string, opts: { delete?: string; json?: boolean }) =>
      withService(async (s) => {
        const names = opts.delete ? opts.delete.split(',').map((x) => x.trim()).filter(Boolean) : [];
        const r = await s.space(vol, names);
        if (opts.json) return printJson(r);
        printTable(
          ['SNAPSHOT', 'HELD ALONE', 'WRITTEN SINCE PREVIOUS'],
          r.perSnapshot.map((p, i) => [p.name, formatBytes(p.uniqueBytes), i === 0 ? '-' : formatBytes(r.writtenBetween[i - 1].bytes)]),
        );
        if (names.length) process.stdout.write(`\ndeleting ${names.join(', ')} would free ${formatBytes(r.freedBytes)} (${r.freedBlocks} blocks)\n`);
      }),
    );
}
