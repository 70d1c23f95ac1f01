/** `snapplane schedule …` and `snapplane daemon`: snapshot schedules with retention. */
import type { Command } from 'commander';
import { describeMirrorUpdate } from '../../core/api/index.js';
import { SnapplaneError, SnapplaneService, cadenceOf, formatBytes, type Cadence, type ScheduleRunReport } from '../../core/service/index.js';
import { printJson, printTable } from '../output.js';
import { UsageError, parseInteger, withService } from '../run.js';

/** How often the daemon says again an error that has not changed (it retries at every pass). */
const REPEAT_ERROR_MS = 3_600_000;

function printRun(r: ScheduleRunReport): void {
  const verb = r.dryRun ? 'would ' : '';
  for (const n of r.take) process.stdout.write(`${verb}take   ${n}\n`);
  for (const n of r.prune) process.stdout.write(`${verb}prune  ${n}\n`);
  for (const k of r.kept) process.stdout.write(`keep   ${k.name} (${k.reason})\n`);
  process.stdout.write(`${r.dryRun ? 'would free' : 'freed'} ${formatBytes(r.freedBytes)}${r.take.length + r.prune.length === 0 ? ' (nothing due)' : ''}\n`);
}

export function registerSchedule(program: Command): void {
  const schedule = program.command('schedule').description('snapshot schedules with retention (snapshots are named <label>-YYYY-MM-DD_HHMM)');
  schedule
    .command('add <vol> <label>')
    .description('add or replace a schedule: --every <interval> or --at <HH:MM> [--on <weekday>], keeping the newest N')
    .option('--every <interval>', 'e.g. 15m, 1h, 1d, 1w')
    .option('--at <time>', 'local time HH:MM')
    .option('--on <weekday>', 'with --at: only on this weekday')
    .requiredOption('--keep <N>', 'how many snapshots of this schedule to keep')
    .option('--json', 'print a JSON report')
    .action((vol: string, label: string, opts: { every?: string; at?: string; on?: string; keep: string; json?: boolean }) =>
      withService(async (s) => {
        if ((opts.every === undefined) === (opts.at === undefined)) throw new UsageError('give exactly one of --every <interval> or --at <HH:MM>');
        if (opts.on !== undefined && opts.at === undefined) throw new UsageError('--on needs --at');
        const cadence: Cadence = cadenceOf(opts);
        const keep = parseInteger(opts.keep, '--keep');
        const before = (await s.scheduleList(vol).catch(() => [])).find((x) => x.label === label);
        const list = await s.scheduleAdd(vol, label, cadence, keep);
        const added = list.find((x) => x.label === label);
        const verb = before ? 'replaced' : 'added';
        // A smaller --keep (or a schedule whose label matches snapshots already there) prunes at its next run: said now.
        const prunes = await s
          .scheduleRun(vol, { dryRun: true })
          .then((r) => r.prune.filter((n) => n.startsWith(`${label}-`)), () => [] as string[]);
        const warning =
          prunes.length > 0
            ? `snapplane: warning: schedule ${label} keeps ${keep}, so its next run (\`snapplane schedule run\` or the daemon's next pass) prunes ${prunes.length} of its snapshot${prunes.length === 1 ? '' : 's'}: ${prunes.join(', ')} (\`schedule run ${vol} --dry-run\` shows the space this frees)\n`
            : '';
        if (opts.json) printJson(list);
        // Another process (the console, another CLI) removed it between the change and the listing.
        else if (!added) process.stdout.write(`schedule ${label} ${verb}, and removed since by another process\n`);
        else if (added.due) process.stdout.write(`schedule ${label} ${verb}; its first snapshot is due now (the next \`snapplane schedule run\` or daemon pass takes it)\n`);
        else process.stdout.write(`schedule ${label} ${verb}; next snapshot at ${added.nextAt}\n`);
        process.stderr.write(warning);
      }),
    );
  schedule
    .command('list <vol>')
    .description("a volume's schedules and when each is next due")
    .option('--json', 'print a JSON report')
    .action((vol: string, opts: { json?: boolean }) =>
      withService(async (s) => {
        const list = await s.scheduleList(vol);
        if (opts.json) return printJson(list);
        printTable(['LABEL', 'CADENCE', 'KEEP', 'NEXT'], list.map((x) => [x.label, x.cadence, x.keep, x.due ? 'due now' : x.nextAt]));
      }),
    );
  schedule
    .command('remove <vol> <label>')
    .description('remove a schedule (its snapshots stay)')
    .action((vol: string, label: string) => withService((s) => s.scheduleRemove(vol, label)));
  schedule
    .command('run <vol>')
    .description('take the snapshots that are due and prune by retention; --dry-run says what and how many bytes it would free')
    .option('--dry-run', 'change nothing; report what would be taken and pruned and the exact space freed')
    .option('--json', 'print a JSON report')
    .action((vol: string, opts: { dryRun?: boolean; json?: boolean }) =>
      withService(async (s) => {
        const r = await s.scheduleRun(vol, { dryRun: opts.dryRun === true });
        if (opts.json) printJson(r);
        else printRun(r);
      }),
    );
  program
    .command('daemon')
    .description('run every snapshot schedule of every known volume, and every mirror relationship with --every, until stopped (SIGINT/SIGTERM)')
    .option('--interval <seconds>', 'how often to look for due schedules', '30')
    .option('--once', 'one pass, then exit')
    .action(async (opts: { interval: string; once?: boolean }) => {
      const everyMs = parseInteger(opts.interval, '--interval') * 1000;
      if (everyMs === 0) throw new UsageError('--interval must be at least 1 (seconds)');
      let stopping = false;
      let wake: (() => void) | null = null;
      let current: SnapplaneService | null = null;
      const stop = (): void => {
        stopping = true;
        wake?.();
        // A transfer stops at its next block and keeps its resume token (a service manager's stop timeout is short).
        if (current && current.cancelJobs() > 0) process.stdout.write('snapplane daemon: stopping the running transfer; the next update resumes it\n');
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      process.stdout.write(opts.once ? 'snapplane daemon: one pass over the schedules and mirrors (--once)\n' : `snapplane daemon: checking schedules every ${everyMs / 1000}s\n`);
      let failures = 0;
      // What failed at the last pass, by volume or mirror: the same error is not printed again every pass.
      const failing = new Map<string, { text: string; printedAt: number }>();
      const failed = (what: string, e: unknown): void => {
        failures++;
        const text = e instanceof SnapplaneError ? `${e.message} (${e.code})` : e instanceof Error ? e.message.split('\n')[0]! : String(e);
        const last = failing.get(what);
        const now = Date.now();
        if (last && last.text === text && now - last.printedAt < REPEAT_ERROR_MS) return;
        const again = last?.text === text ? ' (still failing)' : opts.once ? '' : ' (said again if it changes, or hourly while it lasts)';
        process.stderr.write(`${new Date(now).toISOString()} ${what}: ${text}${again}\n`);
        failing.set(what, { text, printedAt: now });
      };
      const worked = (what: string): void => {
        if (failing.delete(what)) process.stdout.write(`${new Date().toISOString()} ${what}: works again\n`);
      };
      while (!stopping) {
        // A fresh service each pass: volumes are open only while their schedules run, so other writers can get in.
        const s = new SnapplaneService({ cpIntervalMs: 0 });
        current = s;
        for (const vol of await s.scheduledVolumes()) {
          if (stopping) break;
          try {
            const r = await s.scheduleRun(vol);
            if (r.take.length || r.prune.length) {
              process.stdout.write(`${r.at} ${vol}: took ${r.take.join(', ') || '-'}; pruned ${r.prune.join(', ') || '-'}; freed ${formatBytes(r.freedBytes)}\n`);
            }
            await s.close(vol);
            worked(vol);
          } catch (e) {
            await s.abortAll();
            failed(vol, e);
          }
        }
        for (const name of await s.dueMirrors()) {
          if (stopping) break;
          try {
            // The list is as old as the updates before this one: another process may have taken this one meanwhile.
            const skipped = await s.mirrorClaimDue(name);
            if (skipped !== null) {
              process.stdout.write(`${new Date().toISOString()} mirror ${name}: skipped, ${skipped}\n`);
              continue;
            }
            const r = await s.mirrorUpdate(name);
            // The words `mirror update` prints, each line stamped (a downstream warning included).
            const { line, warnings } = describeMirrorUpdate(r, formatBytes);
            for (const l of [line, ...warnings]) process.stdout.write(`${new Date().toISOString()} mirror ${l}\n`);
            worked(`mirror ${name}`);
          } catch (e) {
            await s.abortAll();
            failed(`mirror ${name}`, e);
          }
        }
        await s.closeAll();
        current = null;
        if (opts.once) break;
        // A referenced timer: it is what keeps the process alive between passes (signal handlers do not).
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, everyMs);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      if (stopping) process.stdout.write('snapplane daemon: stopped\n');
      process.exitCode = opts.once && failures > 0 ? 1 : 0;
    });
}
