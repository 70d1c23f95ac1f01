/** `snapplane image eval`, `send`, `receive`, `copy`, `backup`, `restore`, `verify`: storage images and image streams. */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { spawnSync } from 'node:child_process';
import { SnapplaneError, asIoError, decodeResumeToken, formatBytes, parseSize, resolveVolumeRef, type ReceiveReport, type SendReport } from '../../core/service/index.js';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline/promises';
import { counted, printJson, printTable } from '../output.js';
import { progressBar } from '../progress.js';
import { UsageError, withService } from '../run.js';

const ORDERS = ['vbn', 'raid', 'tape'] as const;
const CODECS = ['none', 'lz4'] as const;

function sendOptions(opts: { order?: string; compress?: string; resume?: string }): { order: (typeof ORDERS)[number]; codec: (typeof CODECS)[number]; resume?: { streamId: string; fromVbn: number } } {
  const order = (opts.order ?? 'vbn') as (typeof ORDERS)[number];
  if (!ORDERS.includes(order)) throw new UsageError(`--order must be one of ${ORDERS.join(', ')} (got '${opts.order}')`);
  const codec = (opts.compress ?? 'none') as (typeof CODECS)[number];
  if (!CODECS.includes(codec)) throw new UsageError(`--compress must be one of ${CODECS.join(', ')} (got '${opts.compress}')`);
  return { order, codec, resume: opts.resume ? decodeResumeToken(opts.resume) : undefined };
}

/** `--next-tape`: a shell command run before each further tape, with the tape's number and path in its environment. */
function shellHook(command: string): (tape: number, path: string) => Promise<void> {
  return async (tape, path) => {
    const r = spawnSync(command, { shell: true, stdio: 'inherit', env: { ...process.env, SNAPPLANE_TAPE: String(tape), SNAPPLANE_TAPE_PATH: path } });
    if (r.status !== 0) throw new SnapplaneError('CANCELLED', `--next-tape hook exited with ${r.status ?? r.signal} before tape ${tape}; stopped`, { path });
  };
}

/** Asks the operator on the terminal to load the next cartridge. */
function promptHook(): (tape: number, path: string) => Promise<void> {
  return async (tape, path) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      await rl.question(`\nLoad tape ${tape} into ${path} and press Enter (Ctrl-C stops) `);
    } finally {
      rl.close();
    }
  };
}

/** How further cartridges get loaded: the --next-tape command, else a prompt on a terminal, else none (an error names the tape needed). */
function tapeChanger(command: string | undefined): ((tape: number, path: string) => Promise<void>) | undefined {
  if (command) return shellHook(command);
  return process.stdin.isTTY && process.stderr.isTTY ? promptHook() : undefined;
}

const NEXT_TAPE_HELP = 'shell command run before each further tape of a tape device (env SNAPPLANE_TAPE, SNAPPLANE_TAPE_PATH); non-zero exit stops; on a terminal without it you are prompted';

function sendLine(r: SendReport): string {
  const what = r.kind === 'full' ? `full image of ${r.snapshots.join(', ')}` : `incremental ${r.snapshots.join(', ')} over ${r.base}`;
  // A compressed stream smaller than its data saved that much; "overhead -93.632%" said it the wrong way round.
  const size = r.overhead < 0 ? `compressed ${(-r.overhead * 100).toFixed(1)}% smaller than the data` : `overhead ${(r.overhead * 100).toFixed(3)}%`;
  return `${r.dryRun ? 'would send' : 'sent'} ${what}: ${counted(r.blocks, 'block')}, ${formatBytes(r.dataBytes)} of data, stream ${formatBytes(r.streamBytes)} (${r.streamBytes} bytes, ${size})${r.target ? ` to ${r.target}` : ''}\n`;
}

function receiveLine(r: ReceiveReport): string {
  if (r.alreadyThere) return `${r.expression} was restored into ${r.volume} before (it has ${r.current}): nothing to receive\n`;
  return `received ${r.kind === 'full' ? 'full image' : `incremental over ${r.base}`} into ${r.volume}${r.created ? ' (created)' : ''}: ${r.snapshots.join(', ')}; current state is ${r.current}; ${counted(r.blocks, 'block')} (${formatBytes(r.bytes)})${r.resumedFromVbn !== null ? `, resumed at VBN ${r.resumedFromVbn}` : ''}\n`;
}

export function registerStream(program: Command): void {
  const image = program.command('image').description('storage images: set arithmetic on bit planes');
  image
    .command('eval <vol> <expr>')
    .description('evaluate an image expression ("June5 + June4 - June3"; + union, - difference, & intersection, parentheses)')
    .option('--json', 'print a JSON report')
    .action((vol: string, expr: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        const r = await s.imageEval(vol, expr);
        if (opts.json) return printJson(r);
        process.stdout.write(`${r.expression}: ${counted(r.blocks, 'block')}, ${formatBytes(r.bytes)}${r.fsinfoBlocks > 0 ? ` (as a stream carries it: its ${counted(r.fsinfoBlocks, 'fsinfo block')} left out)` : ''}\n`);
        process.stdout.write(r.streamable ? `streamable as a${r.kind === 'full' ? ' full' : 'n incremental'} image\n` : `not streamable: ${r.reason}\n`);
      }),
    );

  image
    .command('plan <vol>')
    .description('plan level-0/1/2 backups of the snapshots: each point\'s image expression and exact size, and the chain restoring a date')
    .requiredOption('--policy <policy>', 'a file, or inline level=interval pairs, e.g. 0=7d,1=1d,2=6h')
    .option('--at <date>', 'also show the chain that restores this date (ISO 8601)')
    .option('--json', 'print a JSON report')
    .action((vol: string, opts: { policy: string; at?: string; json?: boolean }) =>
      withService(async (s) => {
        const text = /^\s*[{\d]/.test(opts.policy) ? opts.policy : await readPolicyFile(opts.policy);
        const r = await s.imagePlan(vol, text, opts.at);
        if (opts.json) return printJson(r);
        printTable(
          ['SNAPSHOT', 'TAKEN', 'LEVEL', 'SIZE', 'IMAGE'],
          r.points.map((p) => [p.snapshot, p.at.replace('T', ' ').slice(0, 16), p.level, formatBytes(p.bytes), p.expression]),
        );
        for (const t of r.totals) process.stdout.write(`level ${t.level}: ${counted(t.points, 'backup')}, ${formatBytes(t.bytes)}\n`);
        // After the plan's newest point: no point of this plan covers them yet (they may well be in backups made before).
        if (r.unplanned.length) process.stdout.write(`not covered by this plan yet (taken after its newest point; the next point carries them): ${r.unplanned.join(', ')}\n`);
        if (r.restore) {
          process.stdout.write(
            r.restore.snapshot ? `restore ${r.restore.at}: ${r.restore.chain.join(' + ')} (${formatBytes(r.restore.bytes)}) gives ${r.restore.snapshot}\n` : `restore ${r.restore.at}: no backup that early\n`,
          );
        }
      }),
    );

  program
    .command('send <vol> <expr>')
    .description('write an image stream of snapshots: "S3 + S2 + S1" (full) or "S5 + S4 - S3" (incremental over S3)')
    .option('--order <order>', 'block order: vbn, raid (whole stripes per record) or tape (with a position table)', 'vbn')
    .option('--compress <codec>', 'compress block records: none or lz4', 'none')
    .option('--dry-run', 'print the exact size without reading any data')
    .option('-o, --output <file>', "write to a file ('-' for stdout, the default)")
    .option('--resume <token>', 'continue an interrupted receive from the token it printed')
    .option('--json', 'print a JSON report (to stderr when the stream goes to stdout)')
    .action((vol: string, expr: string, opts: { order?: string; compress?: string; dryRun?: boolean; output?: string; resume?: string; json?: boolean }) =>
      withService(async (s) => {
        const o = sendOptions(opts);
        if (opts.dryRun) {
          const r = await s.sendDryRun(vol, expr, o);
          if (opts.json) return printJson(r);
          process.stdout.write(sendLine(r));
          return;
        }
        const bar = progressBar(opts.json === true);
        try {
          if (opts.output && opts.output !== '-') {
            // -o is a redirection, as `>` is: it replaces the file (a backup keeps one unless --force).
            const r = await s.sendToFile(vol, expr, opts.output, { ...o, force: true }, bar);
            bar.stop();
            if (opts.json) return printJson(r);
            process.stdout.write(sendLine(r));
            return;
          }
          if (process.stdout.isTTY) throw new UsageError('refusing to write a binary stream to a terminal; use -o <file> or a pipe');
          const { report, stream } = await s.sendStream(vol, expr, o, bar);
          await pipeline(Readable.from(stream), process.stdout).catch((e: unknown) => {
            throw asIoError(e, 'cannot write the stream to standard output');
          });
          bar.stop();
          if (opts.json) process.stderr.write(`${JSON.stringify(report)}\n`);
        } finally {
          bar.stop();
        }
      }),
    );

  program
    .command('receive <vol>')
    .description('apply an image stream to a volume (a full stream into a missing volume creates it); atomic: on any error the volume stays as it was')
    .option('-i, --input <file>', "read from a file ('-' for stdin, the default)")
    .option('--force', 'an incremental into a volume changed since its base: discard those changes (in the commit of the stream, only if it lands)')
    .option('--raid <n>', 'when the stream creates the volume: a RAID-4 group of n data members plus parity')
    .option('--in <vol>', 'the -i file is inside this volume (or vol@snapshot), not on the host')
    .option('--next-tape <command>', NEXT_TAPE_HELP)
    .option('--token', 'print the resume token an interrupted receive left, and exit')
    .option('--json', 'print a JSON report')
    .action((vol: string, opts: { input?: string; in?: string; nextTape?: string; force?: boolean; raid?: string; token?: boolean; json?: boolean }) =>
      withService(async (s) => {
        if (opts.token) {
          const t = await s.receiveToken(vol);
          if (opts.json) return printJson({ volume: vol, token: t });
          if (!t) {
            process.stderr.write(`snapplane: no interrupted receive into ${vol}\n`);
            return 1;
          }
          process.stdout.write(`${t}\n`);
          return;
        }
        const raid = opts.raid ? Number(opts.raid) : undefined;
        if (raid !== undefined && (!Number.isInteger(raid) || raid < 2)) throw new UsageError('--raid needs at least 2 data members');
        const bar = progressBar(opts.json === true);
        try {
          let r: ReceiveReport;
          if (opts.in && (!opts.input || opts.input === '-')) throw new UsageError('--in needs -i <path inside that volume>');
          if (opts.input && opts.input !== '-') r = await s.receiveFile(vol, opts.input, { force: opts.force, raid, inVolume: opts.in ? await resolveVolumeRef(opts.in) : undefined, nextTape: tapeChanger(opts.nextTape) }, bar);
          else {
            if (process.stdin.isTTY) throw new UsageError('reading a stream from a terminal; pipe one in or use -i <file>');
            r = await s.receive(vol, process.stdin as AsyncIterable<Buffer>, { force: opts.force, raid }, bar);
          }
          bar.stop();
          if (opts.json) return printJson(r);
          process.stdout.write(receiveLine(r));
        } finally {
          bar.stop();
        }
      }),
    );

  program
    .command('copy <src-vol> <dst-vol> <expr>')
    .description('disk copy: the image\'s blocks to the same VBNs of a second volume (full creates it; incremental updates it)')
    .option('--force', 'discard the changes of a destination changed since its base (only if the copy lands)')
    .option('--json', 'print a JSON report')
    .action((src: string, dst: string, expr: string, opts: { force?: boolean; json?: boolean }) =>
      withService(async (s) => {
        const bar = progressBar(opts.json === true);
        const r = await s.copy(src, dst, expr, { force: opts.force }, bar);
        bar.stop();
        if (opts.json) return printJson(r);
        process.stdout.write(receiveLine(r));
      }),
    );

  program
    .command('backup <vol> <expr>')
    .description('file or tape backup of an image: --to file:<path> (one stream file), tape:<folder> (tape files of --tape-size) or tape:<device> (e.g. /dev/nst0, cartridges of --tape-size)')
    .requiredOption('--to <target>', 'file:<path>, tape:<folder> or tape:<device>')
    .option('--in <vol>', 'with --to file:<path>: the path is inside this volume, not on the host')
    .option('--tape-size <size>', 'capacity of each tape file (e.g. 800G, 64M)', '1G')
    .option('--next-tape <command>', 'shell command run before each further tape (env SNAPPLANE_TAPE, SNAPPLANE_TAPE_PATH); non-zero exit aborts; a tape device without it prompts on a terminal')
    .option('--compress <codec>', 'none or lz4', 'none')
    .option('--force', 'with --to file:<path>: replace a file already at <path> (without it an existing file is kept and the backup refused)')
    .option('--json', 'print a JSON report')
    .action((vol: string, expr: string, opts: { to: string; in?: string; tapeSize: string; nextTape?: string; compress?: string; force?: boolean; json?: boolean }) =>
      withService(async (s) => {
        const m = /^(file|tape):(.+)$/.exec(opts.to);
        if (!m) throw new UsageError(`--to must be file:<path> or tape:<folder> (got '${opts.to}')`);
        const o = sendOptions({ compress: opts.compress });
        const bar = progressBar(opts.json === true);
        if (m[1] === 'tape') {
          if (opts.in) throw new UsageError('--in is for --to file:<path> (tapes are host folders or devices)');
          if (opts.force) throw new UsageError('--force is for --to file:<path>: a tape folder must be empty, and a tape device is always written from its start');
          const beforeTape = opts.nextTape ? shellHook(opts.nextTape) : undefined;
          const askOperator = tapeChanger(undefined);
          const r = await s.sendToTape(vol, expr, m[2], { tapeSize: parseSize(opts.tapeSize), beforeTape, askOperator, codec: o.codec }, bar);
          bar.stop();
          if (opts.json) return printJson(r);
          process.stdout.write(sendLine(r).replace(/\n$/, `, on ${counted(r.tapes, 'tape')}\n`));
          return;
        }
        const r = await s.sendToFile(vol, expr, m[2], { ...o, inVolume: opts.in, force: opts.force }, bar);
        bar.stop();
        if (opts.json) return printJson(r);
        process.stdout.write(sendLine(r));
      }),
    );

  program
    .command('restore <dst-vol> <backups...>')
    .description('restore a chain of backups (full first, then incrementals) into a volume: the chain\'s order is checked before anything is written, each backup is verified as it is received and commits whole; into a volume that holds the first backups of the chain already (a restore that stopped), it goes on with the rest')
    .option('--raid <n>', 'create the volume as a RAID-4 group of n data members plus parity')
    .option('--in <vol>', 'the backup files are inside this volume (or vol@snapshot), not on the host')
    .option('--next-tape <command>', NEXT_TAPE_HELP)
    .option('--json', 'print a JSON report')
    .action((dst: string, backups: string[], opts: { raid?: string; in?: string; nextTape?: string; json?: boolean }) =>
      withService(async (s) => {
        const bar = progressBar(opts.json === true);
        const r = await s.restore(dst, backups, { raid: opts.raid ? Number(opts.raid) : undefined, inVolume: opts.in ? await resolveVolumeRef(opts.in) : undefined, nextTape: tapeChanger(opts.nextTape) }, bar);
        bar.stop();
        if (opts.json) return printJson(r);
        for (const x of r) process.stdout.write(receiveLine(x));
      }),
    );

  program
    .command('restore-file <vol-path> <host-path>')
    .description('restore one file or folder out of a backup chain, reading only its metadata and its blocks')
    .requiredOption('--from <backups...>', 'the backup chain: a full backup, then incrementals')
    .option('--snapshot <name>', 'restore it as of this snapshot of the chain (default: the newest)')
    .option('--in <vol>', 'the backup files are inside this volume (or vol@snapshot), not on the host')
    .option('--next-tape <command>', NEXT_TAPE_HELP)
    .option('--json', 'print a JSON report')
    .action((volPath: string, hostPath: string, opts: { from: string[]; snapshot?: string; in?: string; nextTape?: string; json?: boolean }) =>
      withService(async (s) => {
        const bar = progressBar(opts.json === true);
        const r = await s.restoreFile(opts.from, volPath, hostPath, { snapshot: opts.snapshot, inVolume: opts.in ? await resolveVolumeRef(opts.in) : undefined, nextTape: tapeChanger(opts.nextTape) }, bar);
        bar.stop();
        if (opts.json) return printJson(r);
        process.stdout.write(`restored ${volPath} to ${hostPath}: ${counted(r.files, 'file')}, ${formatBytes(r.bytes)}; read ${formatBytes(r.backupBytesRead)} of the backups\n`);
      }),
    );

  program
    .command('jobs')
    .description('the job history: schedule runs and transfers, with outcome, phases, bytes and resume tokens')
    .option('--last <n>', 'show the newest n jobs', '20')
    .option('--json', 'print a JSON report')
    .action((opts: { last: string; json?: boolean }) =>
      withService(async (s) => {
        const all = await s.jobHistory();
        const jobs = all.slice(-Math.max(1, Number(opts.last) || 20));
        if (opts.json) return printJson(jobs);
        printTable(
          ['ID', 'KIND', 'STARTED', 'OUTCOME', 'VOLUME', 'DETAIL'],
          jobs.map((j) => [
            j.id,
            j.kind,
            j.startedAt.replace('T', ' ').slice(0, 19),
            j.outcome,
            j.volume,
            j.kind === 'schedule-run'
              ? `took ${j.taken.length}, pruned ${j.pruned.length}, freed ${formatBytes(j.freedBytes)}${j.error ? `; ${j.error}` : ''}`
              : `${j.expression ? `${j.expression} ` : ''}→ ${j.target}: ${formatBytes(j.bytes)}${j.resumeToken ? `; resume token ${j.resumeToken}` : ''}${j.error ? `; ${j.error}` : ''}`,
          ]),
        );
      }),
    );

  program
    .command('verify <backups...>')
    .description('check backups end to end (every record, counts, digest) and that they form a restorable chain, without restoring; backups that start with an incremental are checked, and their chain is reported as not checked (exit 0); exit 1 for a bad backup or a chain fault (a gap, wrong order, another volume)')
    .option('--in <vol>', 'the backup files are inside this volume (or vol@snapshot), not on the host')
    .option('--next-tape <command>', NEXT_TAPE_HELP)
    .option('--json', 'print a JSON report')
    .action((backups: string[], opts: { in?: string; nextTape?: string; json?: boolean }) =>
      withService(async (s) => {
        const r = await s.verify(backups, { inVolume: opts.in ? await resolveVolumeRef(opts.in) : undefined, nextTape: tapeChanger(opts.nextTape) });
        if (opts.json) printJson(r);
        else {
          for (const b of r.backups) {
            process.stdout.write(b.ok ? `ok   ${b.file}: ${b.kind} ${b.expression}, ${counted(b.blocks, 'block')} (${formatBytes(b.bytes)})\n` : `BAD  ${b.file}: ${b.error}\n`);
          }
          if (r.chain) process.stdout.write(`chain: ${r.chain}\n`);
          else if (r.ok && r.chainStatus === 'not-checked' && r.chainNote) process.stdout.write(`chain: ${r.chainNote}\n`);
          else if (r.ok && backups.length > 1) process.stdout.write('chain: restorable in this order\n');
        }
        return r.ok ? 0 : 1;
      }),
    );
}

/** A policy given as a file name: its text, or a usage error saying what `--policy` takes. */
async function readPolicyFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--policy '${path}': ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}; give level=interval pairs (e.g. 0=7d,1=1d,2=6h) or a file holding them or the JSON form`);
  }
}
