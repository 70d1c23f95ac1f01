/** `snapplane snap …`: snapshots. */
import type { Command } from 'commander';
import { formatBytes, type SnapshotInfo } from '../../core/service/index.js';
import { counted, printJson, printTable } from '../output.js';
import { UsageError, withService } from '../run.js';

function flags(s: SnapshotInfo): string {
  return [s.flags.shadow && 'shadow', s.flags.stale && 'stale', s.flags.master && 'master', s.flags.hold && 'hold'].filter(Boolean).join(',') || '-';
}

export function registerSnap(program: Command): void {
  const snap = program.command('snap').description('snapshots: create, delete, rename, list, diff, restore, revert, holds');
  snap
    .command('create <vol> <name>')
    .description('take a snapshot (a consistency point copies the active plane)')
    .option('--shadow', 'a shadow snapshot: its blocks may be reused, so it never pins space')
    .option('--json', 'print a JSON report')
    .action((vol: string, name: string, opts: { shadow?: boolean; json?: boolean }) =>
      withService(async (s) => {
        const info = await s.snapCreate(vol, name, opts.shadow === true);
        if (opts.json) printJson(info);
        else process.stdout.write(`created ${opts.shadow ? 'shadow ' : ''}snapshot ${info.name} (plane ${info.plane}, ${counted(info.blocks, 'block')})\n`);
      }),
    );
  snap
    .command('delete <vol> <name>')
    .description('delete a snapshot; the blocks only it held become free')
    .option('--json', 'print a JSON report')
    .action((vol: string, name: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        // What it frees is counted before it goes (the same count `space` gives), only when asked for.
        const freed = opts.json ? await s.space(vol, [name]) : null;
        await s.snapDelete(vol, name);
        if (freed) printJson({ volume: vol, deleted: name, freedBlocks: freed.freedBlocks, freedBytes: freed.freedBytes });
      }),
    );
  snap
    .command('rename <vol> <old> <new>')
    .description('rename a snapshot')
    .action((vol: string, from: string, to: string) => withService((s) => s.snapRename(vol, from, to)));
  snap
    .command('hold <vol> <name>')
    .description('put a hold on a snapshot: it cannot be deleted until released')
    .action((vol: string, name: string) => withService(async (s) => void (await s.snapHold(vol, name, true))));
  snap
    .command('release <vol> <name>')
    .description('release the hold on a snapshot')
    .action((vol: string, name: string) => withService(async (s) => void (await s.snapHold(vol, name, false))));
  snap
    .command('list <vol>')
    .description('snapshots, oldest first, with the space each holds alone')
    .option('--json', 'print a JSON report')
    .action((vol: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        const list = await s.snapList({ volume: vol });
        if (opts.json) return printJson(list);
        printTable(
          ['NAME', 'CREATED', 'PLANE', 'BLOCKS', 'UNIQUE', 'FLAGS'],
          list.map((x) => [x.name, x.createdAt.slice(0, 19).replace('T', ' '), x.plane, x.blocks, formatBytes(x.uniqueBytes), flags(x)]),
        );
      }),
    );
  snap
    .command('diff <vol> <older> <newer>')
    .description("files added, changed and removed between two snapshots ('active' names the live file system)")
    .option('--json', 'print a JSON report')
    .action((vol: string, older: string, newer: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        const d = await s.snapDiff(vol, older, newer);
        if (opts.json) return printJson(d);
        for (const p of d.added) process.stdout.write(`+ ${p}\n`);
        for (const p of d.changed) process.stdout.write(`M ${p}\n`);
        for (const p of d.removed) process.stdout.write(`- ${p}\n`);
        process.stderr.write(`${d.added.length} added, ${d.changed.length} changed, ${d.removed.length} removed\n`);
      }),
    );
  snap
    .command('restore <vol> <snap> <vol-path>')
    .description('put a file or folder back from a snapshot, sharing its blocks (no data copy)')
    .option('--to <vol-path>', 'restore to another place instead of the original path')
    .action((vol: string, name: string, path: string, opts: { to?: string }) => withService((s) => s.snapRestore(vol, name, path, opts.to)));
  snap
    .command('revert <vol> <snap>')
    .description('make the whole volume what it was at a snapshot; later changes are lost')
    .option('--yes', 'confirm: everything written after the snapshot is lost (later snapshots are kept)')
    .action((vol: string, name: string, opts: { yes?: boolean }) =>
      withService(async (s) => {
        if (!opts.yes) {
          const diff = await s.snapDiff(vol, name, 'active');
          throw new UsageError(
            `revert would lose ${diff.added.length} added, ${diff.changed.length} changed and bring back ${diff.removed.length} removed file(s) since '${name}'; run again with --yes to revert`,
          );
        }
        await s.snapRevert(vol, name);
      }),
    );
}
