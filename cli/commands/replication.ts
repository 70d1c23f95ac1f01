/** `snapplane serve`, `master`, `replicate`, `mirror …`: master snapshots, replication between hosts, mirror relationships. */
import type { Command } from 'commander';
import { cadenceOf, formatBytes, parseSize, type MirrorInfo, type MirrorUpdateReport } from '../../core/service/index.js';
import { SnapplaneService } from '../../core/service/index.js';
import { describeMirrorSet, describeMirrorUpdate, describeMirrorUpdatePreview, describeReplicatePreview, describeTransferProgress, transferPercent } from '../../core/api/index.js';
import { printFields, printJson, printTable } from '../output.js';
import { progressBar } from '../progress.js';
import { UsageError, parseInteger, parsePort, reportError, withService } from '../run.js';

const KINDS = ['full', 'incremental', 'replica'] as const;

function limitOption(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  // parseSize's own words speak of a size: a rate is what was asked for.
  let n = 0;
  try {
    n = parseSize(text.replace(/\/s$/i, ''));
  } catch {
    n = 0;
  }
  if (n <= 0) throw new UsageError(`--limit must be a positive rate in bytes per second with an optional K, M, G or T suffix, e.g. 50M (got '${text}')`);
  return n;
}

function ago(seconds: number | null): string {
  if (seconds === null) return '-';
  if (seconds < 120) return `${Math.round(seconds)}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}

function updateLine(r: MirrorUpdateReport): string {
  const { line, warnings } = describeMirrorUpdate(r, formatBytes);
  return [line, ...warnings].map((l) => `${l}\n`).join('');
}

function statusRows(list: MirrorInfo[]): (string | number)[][] {
  return list.map((m) => [m.name, m.kind, m.progress && transferPercent(m.progress) !== null ? `${m.state} ${transferPercent(m.progress)}%` : m.state, m.source, m.destination, m.lastCommon ?? '-', ago(m.lagSeconds), m.lagBlocks ?? '-', m.every ?? '-']);
}

/** Says on stderr when other users can read a key file (the transfer goes on: see core/net/key-file.ts). */
async function warnIfExposed(s: SnapplaneService, keyFile: string): Promise<void> {
  const warning = await s.keyFileWarning(keyFile);
  if (warning) process.stderr.write(`snapplane: warning: ${warning}\n`);
}

export function registerReplication(program: Command): void {
  program
    .command('serve')
    .description('run a replication endpoint: other hosts replicate into volumes under --root after proving the pre-shared key')
    .requiredOption('--port <port>', 'TCP port (0 picks a free one)')
    .requiredOption('--key-file <file>', 'pre-shared key (at least 16 bytes), the same on both hosts')
    .requiredOption('--root <dir>', 'folder whose volumes remote hosts may receive into (by name); the endpoint keeps its id there (.snapplane-endpoint.json)')
    .option('--listen <address>', 'address to listen on', '127.0.0.1')
    .option('--hold <seconds>', 'keep a volume open this long after its last request, so the next update finds it loaded (0: close at once)', '30')
    .action(async (opts: { port: string; keyFile: string; root: string; listen: string; hold: string }) => {
      const service = new SnapplaneService({ cpIntervalMs: 0 });
      try {
        const holdMs = parseInteger(opts.hold, '--hold') * 1000;
        const ep = await service.serve({ host: opts.listen, port: parsePort(opts.port), root: opts.root, keyFile: opts.keyFile, holdMs, log: (l) => process.stderr.write(`${new Date().toISOString()} ${l}\n`) });
        process.stdout.write(`snapplane serve: listening on ${ep.host.includes(':') ? `[${ep.host}]` : ep.host}:${ep.port}, volumes under ${opts.root}\n`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await ep.close();
        await service.closeAll();
      } catch (e) {
        await service.abortAll();
        process.exitCode = reportError(e);
      }
    });

  const master = program.command('master').description('master snapshots: the ones destinations replicate against ("master" names the newest)');
  for (const [verb, mark] of [['mark', true], ['unmark', false]] as const) {
    master
      .command(`${verb} <vol> <snap>`)
      .description(mark ? 'mark a snapshot as a master snapshot' : 'unmark a master snapshot (refused while a destination still needs it)')
      .option('--json', 'print a JSON report')
      .action((vol: string, snap: string, opts: { json?: boolean }) =>
        withService(async (s) => {
          const list = await s.masterMark(vol, snap, mark);
          if (opts.json) return printJson(list);
          process.stdout.write(`${mark ? 'marked' : 'unmarked'} ${snap}; master now points at ${list.find((m) => m.pointer)?.name ?? 'nothing'}\n`);
        }),
      );
  }
  master
    .command('list <vol>')
    .description('master snapshots, oldest first, and which destinations still need each')
    .option('--json', 'print a JSON report')
    .action((vol: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        const list = await s.masterList(vol);
        if (opts.json) return printJson(list);
        if (list.length === 0) return void process.stdout.write(`${vol} has no master snapshots\n`);
        printTable(['MASTER', 'TAKEN', 'POINTER', 'NEEDED BY'], list.map((m) => [m.name + (m.shadow ? ' (shadow)' : ''), m.createdAt.replace('T', ' ').slice(0, 19), m.pointer ? 'master' : '', m.neededBy.join(', ') || '-']));
      }),
    );

  master
    .command('release <vol> <dest>')
    .description('forget a destination that will not come back (its host is gone, or the copy was deleted): the masters only it needed are no longer held')
    .option('--json', 'print a JSON report')
    .action((vol: string, dest: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        const r = await s.masterRelease(vol, dest);
        if (opts.json) return printJson(r);
        process.stdout.write(`${vol} forgot destination ${r.destination}; ${r.released.length > 0 ? `no longer held for it: ${r.released.join(', ')}` : 'it held no master snapshot alone'}\n`);
      }),
    );

  program
    .command('replicate <src-vol> <dest>')
    .description("bring <dest> (a local volume, or <host>:<port>/<name>; an IPv6 host in brackets, [::1]:7400/<name>) up to the source's newest master snapshot")
    .option('--key-file <file>', 'pre-shared key for a remote destination')
    .option('--limit <rate>', 'bandwidth limit in bytes per second, e.g. 50M')
    .option('--raid <N>', 'a destination created by a full copy: a RAID-4 group of N data members')
    .option('--dry-run', 'say what would be sent (full or incremental, from and to which master, its exact size) and send nothing')
    .option('--json', 'print a JSON report')
    .action((src: string, dest: string, opts: { keyFile?: string; limit?: string; raid?: string; dryRun?: boolean; json?: boolean }) =>
      withService(async (s) => {
        if (opts.keyFile) await warnIfExposed(s, opts.keyFile);
        const bar = progressBar(opts.json === true || opts.dryRun === true);
        try {
          const r = await s.replicate(src, dest, { keyFile: opts.keyFile, limit: limitOption(opts.limit), raid: opts.raid ? parseInteger(opts.raid, '--raid') : undefined, dryRun: opts.dryRun === true }, bar);
          bar.stop();
          if (opts.json) return printJson(r);
          if (r.dryRun) return void process.stdout.write(`${describeReplicatePreview(r, formatBytes)}\n`);
          if (r.kind === 'none') return void process.stdout.write(`${r.destination} is up to date: ${r.reason}\n`);
          process.stdout.write(`replicated ${r.kind === 'full' ? `a full copy of ${r.to} (${r.reason})` : `${r.from} → ${r.to}`} to ${r.destination}: ${r.blocks} blocks, ${formatBytes(r.bytes)} in ${r.seconds.toFixed(1)} s${r.resumedFromVbn !== null ? `, resumed at VBN ${r.resumedFromVbn}` : ''}${r.offline ? `; the destination was off-line meanwhile (${r.offline})` : ''}${r.dropped?.length ? `; the destination deleted ${r.dropped.join(', ')} (no longer ${r.dropped.length === 1 ? 'a master' : 'masters'} on the source)` : ''}\n`);
        } finally {
          bar.stop();
        }
      }),
    );

  const mirror = program.command('mirror').description('mirror relationships: full mirrors, incremental mirrors (slow base + fast sparse incrementals), replicas');
  mirror
    .command('create <name> <src-vol> <dest>')
    .description('record a relationship; `mirror update` initializes it (dest: a volume, host:port/name, or for --kind incremental the fast folder)')
    .requiredOption('--kind <kind>', 'full | incremental | replica')
    .option('--every <interval>', 'update schedule for `snapplane daemon` and the console, e.g. 15m')
    .option('--at <time>', 'instead of --every: update daily at this local time, HH:MM')
    .option('--on <weekday>', 'with --at: only on this weekday')
    .option('--slow <medium>', 'incremental mirrors: the base image, file:<path> or tape:<folder>')
    .option('--key-file <file>', 'pre-shared key for a remote destination')
    .option('--limit <rate>', 'bandwidth limit in bytes per second, e.g. 50M')
    .option('--json', 'print a JSON report')
    .action((name: string, src: string, dest: string, opts: { kind: string; every?: string; at?: string; on?: string; slow?: string; keyFile?: string; limit?: string; json?: boolean }) =>
      withService(async (s) => {
        const kind = opts.kind as (typeof KINDS)[number];
        if (!KINDS.includes(kind)) throw new UsageError(`--kind must be one of ${KINDS.join(', ')} (got '${opts.kind}')`);
        if (opts.every !== undefined && opts.at !== undefined) throw new UsageError('give at most one of --every <interval> or --at <HH:MM>');
        if (opts.on !== undefined && opts.at === undefined) throw new UsageError('--on needs --at');
        const schedule = opts.every !== undefined || opts.at !== undefined ? cadenceOf(opts) : undefined;
        const r = await s.mirrorCreate(name, src, dest, { kind, schedule, slow: opts.slow, keyFile: opts.keyFile, limit: limitOption(opts.limit) });
        if (opts.keyFile) await warnIfExposed(s, opts.keyFile);
        if (opts.json) return printJson(r);
        process.stdout.write(`created ${r.kind} mirror ${r.name}: ${r.source} → ${r.destination}${r.slow ? ` (base on ${r.slow})` : ''}; \`snapplane mirror update ${r.name}\` initializes it\n`);
      }),
    );
  mirror
    .command('set <name>')
    .description('change a relationship\'s schedule, bandwidth limit or key file; its state and snapshots stay (no full copy, as delete and create again would need)')
    .option('--every <interval>', 'update on this schedule from now on, e.g. 15m')
    .option('--at <time>', 'instead of --every: update daily at this local time, HH:MM')
    .option('--on <weekday>', 'with --at: only on this weekday')
    .option('--on-demand', 'no schedule: updated only by `mirror update` (or the console)')
    .option('--limit <rate>', 'bandwidth limit in bytes per second, e.g. 50M')
    .option('--no-limit', 'no bandwidth limit')
    .option('--key-file <file>', 'a remote destination\'s pre-shared key file (when it moved, or the key was changed on both hosts)')
    .option('--json', 'print a JSON report')
    .action((name: string, opts: { every?: string; at?: string; on?: string; onDemand?: boolean; limit?: string | false; keyFile?: string; json?: boolean }) =>
      withService(async (s) => {
        const schedules = [opts.every !== undefined, opts.at !== undefined, opts.onDemand === true].filter(Boolean).length;
        if (schedules > 1) throw new UsageError('give at most one of --every <interval>, --at <HH:MM> or --on-demand');
        if (opts.on !== undefined && opts.at === undefined) throw new UsageError('--on needs --at');
        // Commander sets limit to true when neither --limit nor --no-limit is given (a negatable option's default).
        const limit = opts.limit === false ? null : typeof opts.limit === 'string' ? limitOption(opts.limit) : undefined;
        if (schedules === 0 && limit === undefined && opts.keyFile === undefined) throw new UsageError('nothing to change: give --every, --at, --on-demand, --limit, --no-limit or --key-file');
        const schedule = opts.onDemand ? null : schedules === 1 ? cadenceOf(opts) : undefined;
        const r = await s.mirrorSet(name, { schedule, limit, keyFile: opts.keyFile });
        if (opts.keyFile) await warnIfExposed(s, opts.keyFile);
        if (opts.json) return printJson(r);
        process.stdout.write(`${describeMirrorSet(r, formatBytes)}\n`);
      }),
    );
  mirror
    .command('update <name>')
    .description('one transfer: initialize, or send what changed since the last common snapshot')
    .option('--dry-run', 'say what it would send (from which snapshot, about how much, which snapshots along), after asking the destination as an update does; take, send and record nothing')
    .option('--json', 'print a JSON report')
    .action((name: string, opts: { dryRun?: boolean; json?: boolean }) =>
      withService(async (s) => {
        if (opts.dryRun) {
          const p = await s.mirrorUpdatePreview(name);
          if (opts.json) return printJson(p);
          return void process.stdout.write(`${describeMirrorUpdatePreview(p, formatBytes)}\n`);
        }
        const bar = progressBar(opts.json === true);
        try {
          const r = await s.mirrorUpdate(name, bar);
          bar.stop();
          if (opts.json) return printJson(r);
          process.stdout.write(updateLine(r));
        } finally {
          bar.stop();
        }
      }),
    );
  mirror
    .command('break <name>')
    .description('takeover: stop updates and make the mirror writable (on the destination host, give the mirror volume instead)')
    .option('--json', 'print a JSON report')
    .action((name: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        const r = await s.mirrorBreak(name);
        if (opts.json) return printJson(r);
        // Given the volume (on the destination's host), the source's host learns of the break at its next update.
        const here = r.relationship !== name ? `; the source's next update of '${r.relationship}' stops there (\`snapplane mirror resync ${r.relationship}\` on the source's host re-establishes it)` : '';
        process.stdout.write(`${r.relationship ?? name}: broken; ${r.destination} is ${r.writable ? 'now writable' : 'not reachable (its marker stays until `snapplane mirror break <volume>` runs on its host)'}${here}\n`);
      }),
    );
  mirror
    .command('resync <name>')
    .description('re-establish from the newest common snapshot without a full copy; refuses (DIVERGED) when that would discard what only the destination holds, unless --discard')
    .option('--reverse', 'swap the direction: the old source becomes the mirror of the volume that took over')
    .option('--discard', 'roll the destination back even though it holds writes or snapshots its source does not (they are lost)')
    .option('--full', 'when nothing is in common any more: copy the source whole beside the mirror (only this relationship\'s), which the copy replaces once it lands; needs room for both meanwhile. An incremental mirror is re-initialized: a new base image, an empty sparse structure')
    .option('--json', 'print a JSON report')
    .action((name: string, opts: { reverse?: boolean; full?: boolean; discard?: boolean; json?: boolean }) =>
      withService(async (s) => {
        const bar = progressBar(opts.json === true);
        try {
          const r = await s.mirrorResync(name, { reverse: opts.reverse, full: opts.full, discard: opts.discard }, bar);
          bar.stop();
          if (opts.json) return printJson(r);
          if (r.common !== null) process.stdout.write(`${name}: resynced from common snapshot ${r.common}${r.discarded.length ? `; discarded on the destination: ${r.discarded.join(', ')} and changes after ${r.common}` : r.discardedBlocks ? `; discarded on the destination: ${r.discardedBlocks} block${r.discardedBlocks === 1 ? '' : 's'} written after ${r.common}` : ''}\n`);
          process.stdout.write(updateLine(r));
        } finally {
          bar.stop();
        }
      }),
    );
  mirror
    .command('status [name]')
    .description('state, last common snapshot and lag of one relationship (or all)')
    .option('--json', 'print a JSON report')
    .action((name: string | undefined, opts: { json?: boolean }) =>
      withService(async (s) => {
        if (name) {
          const m = await s.mirrorStatus(name);
          if (opts.json) return printJson(m);
          printFields([
            ['relationship', `${m.name} (${m.kind})`],
            ['state', m.progress ? `${m.state}: ${describeTransferProgress(m.progress, formatBytes)} at ${m.progress.at}` : m.state],
            ['source', m.source],
            ['destination', m.destination + (m.slow ? ` (base on ${m.slow})` : '')],
            ['last common', m.lastCommon ?? '-'],
            ['lag', m.lagSeconds === null ? '-' : `${ago(m.lagSeconds)}, ${m.lagBlocks ?? '?'} blocks written since`],
            ['last transfer', m.lastTransferAt ? `${m.lastTransferAt} (${formatBytes(m.lastTransferBytes)}, ${m.lastSelection ?? '-'})` : '-'],
            ['schedule', m.every ? `${m.every}, ${m.nextAt ? `next ${m.nextAt}` : 'stopped while the relationship is broken'}` : 'on demand'],
            ...(m.limit !== null ? ([['limit', `${formatBytes(m.limit)}/s`]] as [string, string][]) : []),
            ...(m.keyFile !== null ? ([['key file', m.keyFile]] as [string, string][]) : []),
            ...(m.replacing ? ([['full resync', 'under way: the next update copies the source whole beside the old mirror, which stays until the copy lands']] as [string, string][]) : []),
            ...(m.lastError ? ([['last error', m.lastError]] as [string, string][]) : []),
          ]);
          return;
        }
        const list = await s.mirrorList();
        if (opts.json) return printJson(list);
        printTable(['NAME', 'KIND', 'STATE', 'SOURCE', 'DESTINATION', 'LAST COMMON', 'LAG', 'LAG BLOCKS', 'SCHEDULE'], statusRows(list));
      }),
    );
  mirror
    .command('list')
    .description('every relationship')
    .option('--json', 'print a JSON report')
    .action((opts: { json?: boolean }) =>
      withService(async (s) => {
        const list = await s.mirrorList();
        if (opts.json) return printJson(list);
        if (list.length === 0) return void process.stdout.write('no mirror relationships\n');
        printTable(['NAME', 'KIND', 'STATE', 'SOURCE', 'DESTINATION', 'LAST COMMON', 'LAG', 'LAG BLOCKS', 'SCHEDULE'], statusRows(list));
      }),
    );
  mirror
    .command('delete <name>')
    .description('forget a relationship (snapshots stay, their holds released; its mirror becomes writable where it can be reached)')
    .option('--json', 'print a JSON report')
    .action((name: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        const r = await s.mirrorDelete(name);
        if (opts.json) return printJson(r);
        process.stdout.write(
          `deleted relationship ${name}${r.released ? '' : `; ${r.destination} was not reached (${r.reason}): it stays a read-only mirror until \`snapplane mirror break <volume>\` runs on its host`}${r.unheld.length ? `; the source's snapshot${r.unheld.length === 1 ? '' : 's'} ${r.unheld.join(', ')} stay${r.unheld.length === 1 ? 's' : ''}, no longer held (\`snapplane snap delete\` frees ${r.unheld.length === 1 ? 'it' : 'them'})` : ''}\n`,
        );
      }),
    );
  mirror
    .command('verify <name>')
    .description('incremental mirrors: check that the base image is there and every block of the sparse structure matches its checksum')
    .option('--json', 'print a JSON report')
    .action((name: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        const r = await s.mirrorVerify(name);
        if (opts.json) return printJson(r);
        process.stdout.write(`${name}: base ${r.base} is there; ${r.blocks} blocks of the sparse structure checked${r.unchecked ? ` (${r.unchecked} of them stored by an older version without a checksum: not checked)` : ''}, all match\n`);
      }),
    );
  mirror
    .command('reconstruct <name> <new-vol>')
    .description('incremental mirrors: rebuild the newest state from the base image plus the sparse incrementals into a new volume')
    .option('--json', 'print a JSON report')
    .action((name: string, vol: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        const bar = progressBar(opts.json === true);
        try {
          const r = await s.mirrorReconstruct(name, vol, bar);
          bar.stop();
          if (opts.json) return printJson(r);
          process.stdout.write(`reconstructed ${r.current} into ${r.volume}: ${r.blocks} blocks (${formatBytes(r.bytes)})\n`);
        } finally {
          bar.stop();
        }
      }),
    );
}
