/** File commands: put, get, ls, rm, mkdir, mv, sync. */
import { posix } from 'node:path';
import type { Command } from 'commander';
import { asIoError, formatBytes, resolveVolumeRef, type CopySummary } from '../../core/service/index.js';
import { counted, modeString, printJson, printTable } from '../output.js';
import { progressBar } from '../progress.js';
import { withService } from '../run.js';

function summary(verb: string, s: CopySummary): string {
  const parts = [counted(s.files, 'file')];
  if (s.dirs) parts.push(counted(s.dirs, 'folder'));
  if (s.symlinks) parts.push(counted(s.symlinks, 'link'));
  // What a put left out (sockets, FIFOs, devices: nothing to copy) is said, not silently dropped.
  const skipped = s.skipped ? `; skipped ${counted(s.skipped, 'special file')} (sockets, FIFOs, devices), the first '${s.firstSkipped}'` : '';
  return `${verb} ${parts.join(', ')}, ${formatBytes(s.bytes)}${skipped}\n`;
}

export function registerFiles(program: Command): void {
  program
    .command('put <vol> <host-path> <vol-path>')
    .description('copy a host file or folder into the volume (modes, owners, times and symlinks kept)')
    .option('--json', 'print a JSON report')
    .action((vol: string, host: string, path: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        const bar = progressBar(opts.json === true);
        try {
          const r = await s.put(vol, host, path, bar);
          bar.stop();
          if (opts.json) printJson(r);
          else process.stdout.write(summary('put', r));
        } finally {
          bar.stop();
        }
      }),
    );
  program
    .command('get <vol> <vol-path> <host-path>')
    .description('copy a file or folder out of the volume or a snapshot (vol@snap); <host-path> - writes a file to standard output')
    .option('--json', 'print a JSON report')
    .action((vol: string, path: string, host: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        if (host === '-') {
          // The file's bytes are the output: no progress bar, no summary.
          await s.getTo(await resolveVolumeRef(vol), path, (chunk) => new Promise<void>((done, fail) => process.stdout.write(chunk, (e) => (e ? fail(asIoError(e, `cannot write '${path}' to standard output`)) : done()))));
          return;
        }
        const bar = progressBar(opts.json === true);
        try {
          const r = await s.get(await resolveVolumeRef(vol), path, host, bar);
          bar.stop();
          if (opts.json) printJson(r);
          else process.stdout.write(summary('got', r));
        } finally {
          bar.stop();
        }
      }),
    );
  program
    .command('ls <vol> [vol-path]')
    .description('list a folder of the volume or of a snapshot (vol@snap)')
    .option('--json', 'print a JSON report')
    .action((vol: string, path: string | undefined, opts: { json?: boolean }) =>
      withService(async (s) => {
        const entries = await s.ls(await resolveVolumeRef(vol), path ?? '/');
        if (opts.json) return printJson(entries);
        printTable(
          ['MODE', 'UID', 'GID', 'SIZE', 'MODIFIED', 'NAME'],
          entries.map((e) => [modeString(e.type, e.mode), e.uid, e.gid, e.size, e.mtime.slice(0, 19).replace('T', ' '), e.type === 'symlink' ? `${e.name} -> ${e.target}` : e.type === 'dir' ? `${e.name}/` : e.name]),
        );
      }),
    );
  program
    .command('rm <vol> <vol-path>')
    .description('remove a file, link or (with -r) a folder tree')
    .option('-r, --recursive', 'remove folders and their contents')
    .action((vol: string, path: string, opts: { recursive?: boolean }) => withService((s) => s.rm(vol, path, opts.recursive === true)));
  program
    .command('mkdir <vol> <vol-path>')
    .description('make a folder')
    .option('-p, --parents', 'make missing parent folders too; no error if it exists')
    .option('--json', 'print the folder as `ls --json` describes it')
    .action((vol: string, path: string, opts: { parents?: boolean; json?: boolean }) =>
      withService(async (s) => {
        await s.mkdir(vol, path, opts.parents === true);
        if (!opts.json) return;
        // The folder as its parent's listing describes it (`ls` of a folder lists what is in it).
        const full = posix.resolve('/', path);
        const entry = (await s.ls({ volume: vol }, posix.dirname(full))).find((e) => e.name === posix.basename(full));
        printJson(entry ?? null);
      }),
    );
  program
    .command('mv <vol> <from> <to>')
    .description('rename or move a file or folder inside the volume')
    .action((vol: string, from: string, to: string) => withService((s) => s.mv(vol, from, to)));
  program
    .command('sync <vol>')
    .description('force a consistency point')
    .option('--json', 'print a JSON report')
    .action((vol: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        const generation = await s.sync(vol);
        if (opts.json) printJson({ generation });
        else process.stdout.write(`consistency point #${generation}\n`);
      }),
    );
}
