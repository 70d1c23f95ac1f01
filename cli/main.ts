/** The `snapplane` command line: every command reaches the engine through the service facade. */
import { Command, CommanderError } from 'commander';
import { registerVolume } from './commands/volume.js';
import { registerFiles } from './commands/files.js';
import { registerSnap } from './commands/snap.js';
import { registerCheck } from './commands/check.js';
import { registerRaid } from './commands/raid.js';
import { registerDemo } from './commands/demo.js';
import { registerSchedule } from './commands/schedule.js';
import { registerStream } from './commands/stream.js';
import { registerReplication } from './commands/replication.js';
import { registerConsole } from './commands/console.js';
import { reportError } from './run.js';
import { setLockHolderName } from '../core/service/index.js';

// A reader that stops early (`snapplane ls vol / | head`) closes the pipe. The rest of the report is not wanted, but
// the command still finishes and closes its volumes (exiting at the first failed write could lose a `put` not yet
// committed), instead of dying with a stack. `send` to standard output sees the error itself and fails, naming it:
// its stream is incomplete.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  // Any other error is for whoever else listens (a stream's pipeline reports it); with no one, it stays fatal.
  if (e.code !== 'EPIPE' && process.stdout.listenerCount('error') === 1) throw e;
});

// The same for standard error: a log reader that goes away (`snapplane serve 2>&1 | head`, a logger that died) must
// not take an endpoint or the daemon down with it; what they would have logged is dropped.
process.stderr.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE' && process.stderr.listenerCount('error') === 1) throw e;
});

const program = new Command();
program
  .name('snapplane')
  .description('Snapplane: a copy-on-write block file system with bit-plane snapshots, on image files or RAID-4 groups.\n<vol> is a volume image file or a RAID-4 group folder; <vol>@<snap> opens a snapshot read-only.')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

// A volume or file this command holds tells whoever finds it taken which command that is: a transfer holds its
// source for as long as it runs, and "process 4711" alone leaves the user to go and look.
program.hook('preAction', (_program, action) => {
  const words: string[] = [];
  for (let c: Command | null = action; c !== null && c !== program; c = c.parent) words.unshift(c.name());
  setLockHolderName(['snapplane', ...words, ...action.args].join(' ').slice(0, 200));
});

registerVolume(program);
registerFiles(program);
registerSnap(program);
registerCheck(program);
registerRaid(program);
registerSchedule(program);
registerStream(program);
registerReplication(program);
registerDemo(program);
registerConsole(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // Help and version exit 0; usage mistakes exit 2 (commander has printed the reason).
    process.exitCode = e.exitCode === 0 ? 0 : 2;
  } else {
    // An action outside withService (daemon, serve, console) reports as every other command: usage mistakes exit 2.
    process.exitCode = reportError(e);
  }
}
