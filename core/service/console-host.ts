/**
 * The console's engine host: one service, its job broker, the scheduler loop and the router, with one event
 * stream. The web host (`snapplane console`) and the Electron engine worker each run one; their transports only
 * carry `router.call` and the events.
 */
import { resolve as resolvePath } from 'node:path';
import type { ConsoleEvent, HostInfo } from '../api/console-types.js';
import { setLockHolderName } from '../fs/lock.js';
import { JobBroker } from './job-broker.js';
import { createRouter, type Router } from './router.js';
import { ScheduleLoop } from './schedule-loop.js';
import { SnapplaneService } from './service.js';
import { snapplaneHome } from './state-store.js';

export interface ConsoleHostOptions {
  transport: HostInfo['transport'];
  /** Volumes to show (remembered in the state). */
  volumes?: string[];
  stateFile?: string;
  /** How often the scheduler looks for due schedules (default 30 s); 0 turns it off. */
  schedulerIntervalMs?: number;
  cpIntervalMs?: number;
  /** Progress push interval of jobs (default 125 ms). */
  sampleMs?: number;
  version?: string;
  log?: (line: string) => void;
  /**
   * How often the known volumes' committed generations are compared with what was last shown (default 2 s; 0 off):
   * a change another process made (the CLI, a daemon) is pushed as a `volumeChanged` event like the console's own.
   */
  watchIntervalMs?: number;
  /**
   * A volume the console opened for writing is closed (its CP committed, its writer lock released) once nothing has
   * changed it for this long and no job or request runs (default 5 s): the CLI and other hosts can write it then.
   */
  idleCloseMs?: number;
}

const IDLE_CLOSE_MS = 5_000;

export class ConsoleHost {
  readonly service: SnapplaneService;
  readonly jobs: JobBroker;
  readonly router: Router;
  private readonly scheduler: ScheduleLoop | null;
  private readonly listeners = new Set<(e: ConsoleEvent) => void>();
  /** The committed generation each known volume had when last looked at (-1: it could not be opened). */
  private readonly generations = new Map<string, number>();
  private watchTimer: NodeJS.Timeout | null = null;
  private watching: Promise<void> | null = null;
  private readonly emitAll: (e: ConsoleEvent) => void;
  /** When each volume open for writing was last changed here. */
  private readonly lastWrite = new Map<string, number>();
  private inFlight = 0;
  /** Closing idle writers: requests wait for it (a request meanwhile would find the lock still ours). */
  private closing: Promise<void> | null = null;
  private idleTimer: NodeJS.Timeout | null = null;

  private constructor(private readonly options: ConsoleHostOptions) {
    this.service = new SnapplaneService({ cpIntervalMs: options.cpIntervalMs, stateFile: options.stateFile, otherWork: () => this.otherWork() });
    const emit = (e: ConsoleEvent): void => this.emitAll(e);
    this.emitAll = (e: ConsoleEvent): void => {
      // The console's own change is announced already: the watcher takes its generation as seen.
      if (e.type === 'volumeChanged') {
        void this.look(e.volume);
        this.lastWrite.set(e.volume, Date.now());
      }
      for (const l of this.listeners) {
        try {
          l(e);
        } catch {
          // a listener's failure is its transport's business
        }
      }
    };
    this.jobs = new JobBroker(this.service, emit, { sampleMs: options.sampleMs });
    const interval = options.schedulerIntervalMs ?? 30_000;
    this.scheduler =
      interval > 0
        ? new ScheduleLoop(this.service, this.jobs, emit, {
            intervalMs: interval,
            onError: (v, e) => options.log?.(`schedule of ${v}: ${e instanceof Error ? e.message : String(e)}`),
          })
        : null;
    const router = createRouter({
      service: this.service,
      jobs: this.jobs,
      emit,
      hostInfo: () => ({
        version: options.version ?? '0.1.0',
        pid: process.pid,
        platform: process.platform,
        home: snapplaneHome(),
        schedulerIntervalMs: interval,
        transport: options.transport,
      }),
    });
    this.router = {
      call: async (method, args) => {
        while (this.closing) await this.closing;
        this.inFlight++;
        try {
          return await router.call(method, args);
        } finally {
          this.inFlight--;
        }
      },
    };
  }

  /** Creates the host, remembers the given volumes and starts the scheduler. */
  static async start(options: ConsoleHostOptions): Promise<ConsoleHost> {
    const host = new ConsoleHost(options);
    for (const v of options.volumes ?? []) await host.service.rememberVolume(resolvePath(v));
    host.scheduler?.start();
    const idle = options.idleCloseMs ?? IDLE_CLOSE_MS;
    if (idle > 0) {
      setLockHolderName('the snapplane console', `the console lets go of a volume ${idle / 1000} s after its last change there: try again then`);
      host.idleTimer = setInterval(() => {
        host.closing ??= host.closeIdle(idle).finally(() => (host.closing = null));
      }, Math.min(1_000, idle));
      host.idleTimer.unref();
    } else setLockHolderName('the snapplane console', 'close the console to write it elsewhere');
    const watch = options.watchIntervalMs ?? 2_000;
    if (watch > 0) {
      host.watching = host.watch().finally(() => (host.watching = null)); // what is on disk now is what is shown
      host.watchTimer = setInterval(() => {
        host.watching ??= host.watch().finally(() => (host.watching = null));
      }, watch);
      host.watchTimer.unref();
    }
    return host;
  }

  /**
   * Whether work besides one job is under way here: a request, a second job, a scheduler pass. Each may hold a
   * writer of this engine, which a mirror update's transfer then keeps rather than gives up (ServiceOptions).
   */
  private otherWork(): boolean {
    return this.inFlight > 0 || this.jobs.list().filter((j) => j.state === 'running').length > 1 || this.scheduler?.passing === true;
  }

  /**
   * Closes the volumes open for writing that nothing changed for `idleMs`, while no job, transfer or request runs:
   * each commits its last CP and releases its writer lock, so the CLI, a mirror update or another host can write it.
   */
  private async closeIdle(idleMs: number): Promise<void> {
    if (this.inFlight > 0 || this.service.busy() || this.jobs.list().some((j) => j.state === 'running')) return;
    const now = Date.now();
    for (const volume of this.service.writableVolumes()) {
      const last = this.lastWrite.get(resolvePath(volume)) ?? this.lastWrite.get(volume);
      if (last === undefined) {
        this.lastWrite.set(volume, now); // opened by something that announced no change (a schedule run): idle from now
        continue;
      }
      if (now - last < idleMs) continue;
      this.lastWrite.delete(volume);
      this.lastWrite.delete(resolvePath(volume));
      await this.service.close(volume).catch((e: unknown) => this.options.log?.(`closing ${volume}: ${e instanceof Error ? e.message : String(e)}`));
    }
  }

  /** The committed generation of `volume` now (remembered), or -1 when it cannot be opened. */
  private async look(volume: string): Promise<number> {
    const g = await this.service.committedGeneration(volume).catch(() => -1);
    this.generations.set(volume, g);
    return g;
  }

  /** One round of the watcher: each known volume whose committed generation moved is announced as changed. */
  private async watch(): Promise<void> {
    const known = await this.service.knownVolumes().catch(() => [] as string[]);
    for (const k of [...this.generations.keys()]) if (!known.includes(k)) this.generations.delete(k);
    for (const volume of known) {
      const before = this.generations.get(volume);
      const now = await this.look(volume);
      if (before !== undefined && before !== now) this.emitAll({ type: 'volumeChanged', volume, reason: 'changed on disk by another process' });
    }
  }

  /** Subscribes to events; returns the unsubscribe function. */
  onEvent(listener: (e: ConsoleEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops the scheduler, cancels running jobs and closes every volume (each writes a final CP). */
  async close(): Promise<void> {
    if (this.watchTimer) clearInterval(this.watchTimer);
    if (this.idleTimer) clearInterval(this.idleTimer);
    await this.closing;
    await this.watching;
    await this.scheduler?.stop();
    await this.jobs.stopAll();
    this.listeners.clear();
    await this.service.closeAll().catch(async () => this.service.abortAll());
  }
}
