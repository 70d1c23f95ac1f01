/**
 * The scheduler of a long-running engine host (the console's web host and Electron worker): every interval it runs
 * each known volume's due snapshot schedules (with retention) on the host's own service, so the volumes it has
 * open stay open, and starts due mirror updates as console jobs. What `snapplane daemon` does, inside the console.
 */
import type { ConsoleEvent } from '../api/console-types.js';
import type { JobBroker } from './job-broker.js';
import type { SnapplaneService } from './service.js';

export interface ScheduleLoopOptions {
  intervalMs: number;
  /** Called with each failure (the loop goes on). */
  onError?: (volume: string, e: unknown) => void;
}

export class ScheduleLoop {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly service: SnapplaneService,
    private readonly jobs: JobBroker,
    private readonly emit: (e: ConsoleEvent) => void,
    private readonly options: ScheduleLoopOptions,
  ) {}

  /** Starts the loop: a first pass at once, then one per interval. */
  start(): void {
    this.stopped = false;
    const tick = (): void => {
      if (this.stopped) return;
      this.running = this.runOnce().finally(() => {
        this.running = null;
        if (!this.stopped) {
          this.timer = setTimeout(tick, this.options.intervalMs);
          this.timer.unref();
        }
      });
    };
    tick();
  }

  /** True while a pass runs (its schedule runs hold writers). */
  get passing(): boolean {
    return this.running !== null;
  }

  /** One pass: due snapshot schedules of every scheduled volume, then due mirror updates. */
  async runOnce(): Promise<void> {
    for (const volume of await this.service.scheduledVolumes().catch(() => [] as string[])) {
      if (this.stopped) return;
      try {
        const r = await this.service.scheduleRun(volume);
        if (r.take.length > 0 || r.prune.length > 0) {
          this.emit({ type: 'scheduleRan', report: r });
          this.emit({ type: 'volumeChanged', volume, reason: `schedule: took ${r.take.join(', ') || 'nothing'}, pruned ${r.prune.join(', ') || 'nothing'}` });
        }
      } catch (e) {
        this.options.onError?.(volume, e);
      }
    }
    for (const name of await this.service.dueMirrors().catch(() => [] as string[])) {
      if (this.stopped) continue;
      // An update or resync of it is running, started by an earlier pass or from the console: that one brings it up
      // to date (a second would be refused BUSY and count as a failed run).
      if (this.jobs.list().some((j) => j.state === 'running' && (j.kind === 'mirror-update' || j.kind === 'mirror-resync') && j.target === name)) continue;
      // ... or another process (the daemon, a `mirror update`) took it since the list was made.
      if ((await this.service.mirrorClaimDue(name).catch(() => 'unreadable state')) !== null) continue;
      await this.jobs.start({ kind: 'mirror-update', name });
    }
  }

  /** Stops the loop and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
