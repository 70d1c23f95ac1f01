/**
 * A RAID-4 group as a BlockDevice: N data members and one parity member, each a sparse image file in one folder.
 * VBN v lives on data member v mod N at disk block MEMBER_DATA_START + floor(v / N); stripe s is the N data blocks
 * at disk block MEMBER_DATA_START + s plus their XOR on the parity member. Consecutive VBNs therefore form
 * contiguous runs on every member, and a long read goes to all members at once.
 *
 * The write hole: before a write touches a region of stripes, its bit is set in the intent log on the parity member
 * (and flushed); after the next flush of all members the log is cleared. Opening a group whose log has bits set
 * recomputes parity for those regions. A stale parity block can only make a reconstruction fail its checksum, never
 * return wrong data, because every block pointer above carries the block's checksum.
 */
import { randomUUID } from 'node:crypto';
import { open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { creatingName, removeAbandonedCreations, syncFolder } from '../common/half-made.js';
import { requireParentFolder } from '../common/parent-folder.js';
import { BLOCK_SIZE } from '../common/units.js';
import { writeFully } from '../common/write-fully.js';
import { makeFolders } from '../common/make-folders.js';
import { SnapplaneError, asIoError } from '../common/errors.js';
import type { BlockDevice, DeviceHealth, DeviceMember } from '../device/block-device.js';
import { Mutex } from '../common/mutex.js';
import { XorArena } from '../common/simd.js';
import {
  INTENT_LOG_BLOCKS,
  INTENT_REGION_STRIPES,
  LABEL_BLOCK,
  MEMBER_DATA_START,
  decodeLabel,
  encodeLabel,
  type MemberLabel,
} from './member-label.js';
import { xorInto } from './xor.js';

type MemberState = 'ok' | 'missing' | 'failed' | 'rebuilding';

interface Member {
  index: number;
  path: string;
  handle: FileHandle | null;
  state: MemberState;
  /** Why a member was failed (a read error, a lost label, a drill), as the labels record it. */
  failure?: string;
}

export interface ScrubReport {
  stripes: number;
  parityMismatches: number;
  parityRepaired: number;
}

const MAX_MEMBERS = 31;
/** The reason recorded for a member that was missing when the group was written. */
const MISSED_WRITES = 'missed writes while it was missing';
const ZERO = Buffer.alloc(1 << 20);

function isZero(b: Buffer): boolean {
  for (let o = 0; o < b.length; o += ZERO.length) {
    const n = Math.min(ZERO.length, b.length - o);
    if (!b.subarray(o, o + n).equals(ZERO.subarray(0, n))) return false;
  }
  return true;
}

/** WebAssembly memory for scratch slots: 48 slots of 1 MiB (read and reconstruct slots of a group of up to 16). */
const SCRATCH_ARENA_BYTES = 48 << 20;

export class Raid4Device implements BlockDevice {
  readonly blockCount: number;
  private readonly writeLock = new Mutex();
  /** Rebuild reads land in WebAssembly memory so they XOR there (kept for the rebuild's duration). */
  private rebuildArena: XorArena | null = null;
  /** Scratch slots of up to 1 MiB (member reads, reconstruction) in WebAssembly memory. */
  private scratchArena: XorArena | null = null;
  private rebuildBuffers: Buffer[][] | null = null;
  private closed = false;
  private intentDirty = false;
  /** Every member's label was read back since the last flush (see checkLabels). */
  private labelsChecked = false;
  private readonly intent: Buffer;
  /** Stripes below this are rebuilt on a member being reconstructed. */
  private rebuildWatermark = 0;

  private constructor(
    readonly label: string,
    private readonly members: Member[],
    private groupLabel: MemberLabel,
    readonly readOnly: boolean,
  ) {
    this.blockCount = groupLabel.stripes * groupLabel.dataMembers;
    this.intent = Buffer.alloc(INTENT_LOG_BLOCKS * BLOCK_SIZE);
  }

  private get n(): number {
    return this.groupLabel.dataMembers;
  }

  private get parity(): Member {
    return this.members[this.n];
  }

  /** Creates a group folder with `dataMembers` data images and one parity image of `memberBytes` each. */
  static async create(folder: string, dataMembers: number, memberBytes: number): Promise<Raid4Device> {
    const stripes = Raid4Device.checkShape(folder, dataMembers, memberBytes);
    await Raid4Device.checkFree(folder);
    await requireParentFolder(folder);
    await makeFolders(folder);
    return Raid4Device.build(folder, dataMembers, stripes);
  }

  /**
   * Creates a group in a temporary folder, lets `fill` write it (through the device, which it leaves open), flushes
   * it and renames the folder into place. A crash before the rename leaves nothing at `folder` (a half-made group
   * there would refuse the next create and every open); a second creator that got there first wins.
   */
  static async createWhole(folder: string, dataMembers: number, memberBytes: number, fill: (device: Raid4Device) => Promise<void>): Promise<void> {
    const stripes = Raid4Device.checkShape(folder, dataMembers, memberBytes);
    await Raid4Device.checkFree(folder);
    await requireParentFolder(folder);
    await removeAbandonedCreations(folder);
    const tmp = creatingName(folder);
    await rm(tmp, { recursive: true, force: true });
    try {
      await makeFolders(tmp);
      const device = await Raid4Device.build(tmp, dataMembers, stripes);
      try {
        await fill(device);
        await device.flush();
      } finally {
        await device.close();
      }
      await syncFolder(tmp);
      try {
        // rename(2) replaces an empty folder (one made to hold the group) and refuses a full one.
        await rename(tmp, folder);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOTDIR') throw new SnapplaneError('EXISTS', `volume '${folder}' already exists`, { volume: folder });
        throw asIoError(e, `cannot create RAID-4 group '${folder}'`, { volume: folder });
      }
      await syncFolder(dirname(folder));
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  /** The stripe count of members of `memberBytes`; INVALID for a shape this format cannot hold. */
  private static checkShape(folder: string, dataMembers: number, memberBytes: number): number {
    if (!Number.isInteger(dataMembers) || dataMembers < 2 || dataMembers >= MAX_MEMBERS) {
      throw new SnapplaneError('INVALID', `a RAID-4 group needs 2 to ${MAX_MEMBERS - 1} data members (got ${dataMembers})`, { volume: folder });
    }
    const stripes = Math.floor(memberBytes / BLOCK_SIZE) - MEMBER_DATA_START;
    if (stripes < 64) throw new SnapplaneError('INVALID', `member size must be at least ${((64 + MEMBER_DATA_START) * BLOCK_SIZE) / 1024} KiB`, { volume: folder });
    return stripes;
  }

  /** EXISTS unless `folder` is absent or an empty folder. */
  private static async checkFree(folder: string): Promise<void> {
    try {
      const st = await stat(folder);
      if (!st.isDirectory() || (await readdir(folder)).length > 0) {
        throw new SnapplaneError('EXISTS', `volume '${folder}' already exists`, { volume: folder });
      }
    } catch (e) {
      if (e instanceof SnapplaneError) throw e;
    }
  }

  /** Writes the members' images and labels into the existing folder `folder`. */
  private static async build(folder: string, dataMembers: number, stripes: number): Promise<Raid4Device> {
    const groupId = randomUUID();
    const members: Member[] = [];
    for (let i = 0; i <= dataMembers; i++) {
      const path = join(folder, i === dataMembers ? 'parity.img' : `data-${i}.img`);
      const handle = await open(path, 'wx+');
      await handle.truncate((MEMBER_DATA_START + stripes) * BLOCK_SIZE);
      const label: MemberLabel = { groupId, index: i, role: i === dataMembers ? 'parity' : 'data', dataMembers, stripes, generation: 1, failedMask: 0 };
      await writeFully(handle, encodeLabel(label), 0, BLOCK_SIZE, LABEL_BLOCK * BLOCK_SIZE);
      await handle.datasync();
      members.push({ index: i, path, handle, state: 'ok' });
    }
    return new Raid4Device(folder, members, { groupId, index: 0, role: 'data', dataMembers, stripes, generation: 1, failedMask: 0 }, false);
  }

  /** Assembles a group from the images in `folder`, in any order; stale or foreign images are left out. */
  static async open(folder: string, options: { readOnly?: boolean } = {}): Promise<Raid4Device> {
    const readOnly = options.readOnly ?? false;
    let names: string[];
    try {
      names = (await readdir(folder)).filter((f) => f.endsWith('.img')).sort();
    } catch (e) {
      throw new SnapplaneError('NOT_FOUND', `volume '${folder}' does not exist`, { volume: folder, cause: e });
    }
    const found: { path: string; label: MemberLabel; handle: FileHandle }[] = [];
    // Images left out of the group, and why: a member that stays out shows the reason (and its image).
    const leftOut: { path: string; index: number | null; reason: string }[] = [];
    for (const name of names) {
      const path = join(folder, name);
      let handle: FileHandle;
      try {
        handle = await open(path, readOnly ? 'r' : 'r+');
      } catch (e) {
        leftOut.push({ path, index: null, reason: `its image ${name} cannot be opened (${(e as NodeJS.ErrnoException).code ?? String(e)})` });
        continue;
      }
      const b = Buffer.alloc(BLOCK_SIZE);
      await handle.read(b, 0, BLOCK_SIZE, LABEL_BLOCK * BLOCK_SIZE).catch(() => undefined);
      const label = decodeLabel(b);
      if (label) found.push({ path, label, handle });
      else {
        leftOut.push({ path, index: null, reason: `its image ${name} has no valid member label (wiped, or not a member image)` });
        await handle.close();
      }
    }
    if (found.length === 0) throw new SnapplaneError('BAD_FORMAT', `'${folder}' holds no RAID-4 member images`, { volume: folder });
    // The group is the one with the newest generation; older members of it are stale.
    const newest = found.reduce((a, b) => (b.label.generation > a.label.generation ? b : a)).label;
    const n = newest.dataMembers;
    const members: Member[] = Array.from({ length: n + 1 }, (_, i) => ({ index: i, path: join(folder, i === n ? 'parity.img' : `data-${i}.img`), handle: null, state: 'missing' as MemberState }));
    for (const f of found) {
      // A member shorter than its stripes (cut short by a copy, or truncated) is left out like a stale one: its
      // blocks come from parity, where reading past its end would give zeros.
      const name = basename(f.path);
      const size = (await f.handle.stat()).size;
      const need = (MEMBER_DATA_START + newest.stripes) * BLOCK_SIZE;
      const ours = f.label.groupId === newest.groupId;
      const out = !ours
        ? `its image ${name} is a member of another group`
        : f.label.dataMembers !== n || f.label.stripes !== newest.stripes
          ? `its image ${name} has a label of another shape (${f.label.dataMembers} data members of ${f.label.stripes} stripes)`
          : f.label.generation !== newest.generation
            ? `its image ${name} is stale: its label is at generation ${f.label.generation}, the group at ${newest.generation}`
            : size < need
              ? `its image ${name} is cut short (${size} bytes of the ${need} a member needs)`
              : null;
      const slot = members[f.label.index];
      if (out !== null || !slot || slot.handle || (newest.failedMask & (1 << f.label.index)) !== 0) {
        if (out !== null) leftOut.push({ path: f.path, index: ours ? f.label.index : null, reason: out });
        await f.handle.close();
        continue;
      }
      slot.handle = f.handle;
      slot.path = f.path;
      slot.state = 'ok';
    }
    for (const m of members) {
      if (m.handle) continue;
      const image = leftOut.find((o) => o.index === m.index) ?? leftOut.find((o) => o.index === null && basename(o.path) === basename(m.path));
      if (image) m.path = image.path;
      if ((newest.failedMask & (1 << m.index)) === 0) {
        m.failure = image?.reason ?? 'no image in the group folder carries its label';
        continue;
      }
      m.state = 'failed';
      const reason = newest.reasons?.[m.index];
      if (reason && image) m.failure = `${reason}; ${image.reason}`;
      else if (reason) m.failure = reason;
    }
    const lost = members.filter((m) => m.state !== 'ok');
    const dev = new Raid4Device(folder, members, newest, readOnly);
    if (lost.length > 1 && !readOnly) {
      await dev.close();
      throw new SnapplaneError('IO', `RAID-4 group '${folder}' has lost ${lost.length} members (${lost.map((m) => basename(m.path)).join(', ')}); it cannot be opened for writing`, {
        volume: folder,
      });
    }
    if (!readOnly) await dev.replayIntentLog();
    return dev;
  }

  /** A member whose file ends before `stripe`: it was whole at open, so it shrank since (truncated or replaced). */
  private endedEarly(m: Member, stripe: number): SnapplaneError {
    return new SnapplaneError('IO', `member ${basename(m.path)} ends before stripe ${stripe} of its ${this.groupLabel.stripes}: it was truncated or replaced while open`, {
      volume: this.label,
      vbn: m.index < this.n ? stripe * this.n + m.index : undefined,
    });
  }

  /**
   * A healthy member whose read failed (an I/O error, or its file shrank under the group) is failed, as a RAID
   * does with a disk that errs, when the others can stand in for it: the read is then served from them and the
   * group runs degraded (recorded in the labels, so it stays failed until `raid replace`). True when it was.
   */
  private failOnReadError(m: Member, e: unknown): boolean {
    if (!(e instanceof SnapplaneError) || e.code !== 'IO') return false;
    // A read that was in flight when another failed the member (its handle closed under it).
    if (m.state === 'failed') return true;
    if (m.state !== 'ok' || this.members.some((o) => o.index !== m.index && o.state !== 'ok')) return false;
    // The read need not wait for the labels; the next write, flush or close does (and reports a failure to write them).
    void this.markFailed(m, e.message).catch(() => undefined);
    return true;
  }

  /** Label writes, one after another (a read may start one while another runs). */
  private labelWrite: Promise<void> = Promise.resolve();

  /** Writes the labels after any label write under way; resolves when this one is done. */
  private queueLabels(): Promise<void> {
    const next = this.labelWrite.catch(() => undefined).then(() => this.writeLabels());
    this.labelWrite = next;
    return next;
  }

  /** Waits for label writes under way; the first waiter after a failed one gets its error. */
  private async labelsWritten(): Promise<void> {
    const pending = this.labelWrite;
    this.labelWrite = Promise.resolve();
    await pending;
  }

  /**
   * Marks a member failed and closes its file (reads in flight on it fail, and go to parity), then records it in
   * the labels (generation + 1, its bit in failedMask; a read-only group only in memory).
   */
  private markFailed(m: Member, failure: string): Promise<void> {
    const handle = m.handle;
    m.handle = null;
    m.state = 'failed';
    m.failure = failure;
    void handle?.close().catch(() => undefined);
    if (this.readOnly) return Promise.resolve();
    return this.recordFailed(m.index, failure);
  }

  /** Records member `index` failed in the labels of the others: generation + 1, its bit in failedMask, the reason. */
  private recordFailed(index: number, failure: string): Promise<void> {
    const g = this.groupLabel;
    this.groupLabel = { ...g, generation: g.generation + 1, failedMask: g.failedMask | (1 << index), reasons: { ...g.reasons, [index]: failure } };
    return this.queueLabels();
  }

  /**
   * A member missing at open misses every write from the first on: before that write it is recorded failed in the
   * labels (as md counts events), so its image, if it comes back, is stale by generation and stays out until
   * `raid replace` rebuilds it, instead of rejoining with old blocks that a second failure would then have to serve.
   */
  private recordMissing(): void {
    for (const m of this.members) {
      if (m.state !== 'missing') continue;
      m.state = 'failed';
      m.failure = MISSED_WRITES;
      void this.recordFailed(m.index, MISSED_WRITES).catch(() => undefined);
    }
  }

  private unavailable(m: Member, stripe: number): boolean {
    return m.state === 'missing' || m.state === 'failed' || (m.state === 'rebuilding' && stripe >= this.rebuildWatermark);
  }

  /** Member index and disk block of a VBN. */
  locate(vbn: number): { member: number; diskBlock: number; stripe: number } {
    const stripe = Math.floor(vbn / this.n);
    return { member: vbn % this.n, diskBlock: MEMBER_DATA_START + stripe, stripe };
  }

  private readonly scratchBuffers = new Map<string, Buffer>();
  /**
   * True while a readBlocks call owns the `read…` slots. Reads of one device do overlap: a volume's fsinfo probe
   * (committedGeneration) runs outside the volume lock, and verified reads go several at a time. Two degraded reads
   * rebuilding into the same slots would each hand out a mix of both, and a send copies blocks unverified.
   */
  private readSlotsBusy = false;

  /**
   * A reusable buffer for `slot`. Fresh memory costs a page fault per 4 KiB on first touch, which dominated
   * member reads. A slot is never used by two at once: the `read…` slots go to one readBlocks call at a time
   * (readSlotsBusy), the others are used only by maintenance under the volume lock.
   */
  private scratch(slot: string, bytes: number): Buffer {
    let b = this.scratchBuffers.get(slot);
    if (!b || b.length < bytes) {
      // Slots up to 1 MiB live in WebAssembly memory, where reconstruction XORs them with SIMD.
      this.scratchArena ??= new XorArena(SCRATCH_ARENA_BYTES);
      const arena = this.scratchArena;
      b = !b && bytes <= 1 << 20 && arena.free >= 1 << 20 ? arena.alloc(1 << 20) : Buffer.allocUnsafeSlow(Math.max(bytes, 1 << 20));
      this.scratchBuffers.set(slot, b);
    }
    return b.subarray(0, bytes);
  }

  private async readMember(m: Member, firstStripe: number, stripes: number, slot?: string, into?: Buffer): Promise<Buffer> {
    const buf = into ? into.subarray(0, stripes * BLOCK_SIZE) : slot ? this.scratch(slot, stripes * BLOCK_SIZE) : Buffer.allocUnsafe(stripes * BLOCK_SIZE);
    if (!m.handle) throw new SnapplaneError('IO', `member ${basename(m.path)} is unavailable`, { volume: this.label });
    let done = 0;
    try {
      while (done < buf.length) {
        const { bytesRead } = await m.handle.read(buf, done, buf.length - done, (MEMBER_DATA_START + firstStripe) * BLOCK_SIZE + done);
        if (bytesRead === 0) throw this.endedEarly(m, firstStripe + Math.floor(done / BLOCK_SIZE));
        done += bytesRead;
      }
    } catch (e) {
      throw asIoError(e, `read failed on member ${basename(m.path)}`, { volume: this.label });
    }
    return buf;
  }

  /** The stripes [first, first+count) of member `index`, reconstructed from the others when it is unavailable. */
  private async memberStripes(index: number, first: number, count: number, slot?: string): Promise<Buffer> {
    const m = this.members[index];
    if (!this.unavailable(m, first + count - 1)) {
      try {
        return await this.readMember(m, first, count, slot);
      } catch (e) {
        if (!this.failOnReadError(m, e)) throw e;
      }
    }
    const others = this.members.filter((o) => o.index !== index);
    const lost = others.filter((o) => this.unavailable(o, first + count - 1));
    if (lost.length > 0) {
      throw new SnapplaneError('IO', `cannot reconstruct stripes ${first}..${first + count - 1} of member ${index}: member ${lost[0].index} is unavailable too`, {
        volume: this.label,
        vbn: first * this.n + Math.min(index, this.n - 1),
      });
    }
    const parts = await Promise.all(others.map((o) => this.readMember(o, first, count, slot ? `${slot}/${o.index}` : undefined)));
    const out = parts[0];
    const arena = this.scratchArena;
    for (let k = 1; k < parts.length; k++) {
      if (arena && arena.owns(out) && arena.owns(parts[k]) && out.length % 64 === 0) arena.xorInto(out, parts[k]);
      else xorInto(out, parts[k]);
    }
    return out;
  }

  async readBlocks(vbn: number, count: number, into?: Buffer): Promise<Buffer> {
    this.checkRange(vbn, count);
    const out = into && into.length === count * BLOCK_SIZE ? into : Buffer.allocUnsafe(count * BLOCK_SIZE);
    const first = Math.floor(vbn / this.n);
    const last = Math.floor((vbn + count - 1) / this.n);
    // A read that overlaps one using the scratch slots rebuilds into fresh buffers of its own.
    const slots = !this.readSlotsBusy;
    if (slots) this.readSlotsBusy = true;
    try {
      await this.readStripes(vbn, count, first, last, out, slots);
    } finally {
      if (slots) this.readSlotsBusy = false;
    }
    return out;
  }

  /** Every member's share of VBNs [vbn, vbn+count) (stripes first..last) into `out`; `slots`: may use the read slots. */
  private async readStripes(vbn: number, count: number, first: number, last: number, out: Buffer, slots: boolean): Promise<void> {
    // Every member's share of the range is one contiguous run: read them all at once. A healthy member's run is
    // scattered straight into its blocks' places in `out` (readv), so blocks are not copied one by one.
    await Promise.all(
      Array.from({ length: this.n }, async (_, m) => {
        let s0 = first;
        let s1 = last;
        if (first * this.n + m < vbn) s0 = first + 1;
        if (last * this.n + m > vbn + count - 1) s1 = last - 1;
        if (s1 < s0) return;
        const slot = (s: number): Buffer => out.subarray((s * this.n + m - vbn) * BLOCK_SIZE, (s * this.n + m - vbn + 1) * BLOCK_SIZE);
        const member = this.members[m];
        if (!this.unavailable(member, s1)) {
          try {
            await this.readMemberScattered(member, s0, s1 - s0 + 1, slot);
            return;
          } catch (e) {
            if (!this.failOnReadError(member, e)) throw e;
          }
        }
        const b = await this.memberStripes(m, s0, s1 - s0 + 1, slots ? `read${m}` : undefined);
        for (let s = s0; s <= s1; s++) b.copy(slot(s), 0, (s - s0) * BLOCK_SIZE, (s - s0 + 1) * BLOCK_SIZE);
      }),
    );
  }

  /** Reads stripes [first, first+count) of a member into `slot(stripe)` (one block each), IOV_MAX blocks per readv. */
  private async readMemberScattered(m: Member, first: number, count: number, slot: (stripe: number) => Buffer): Promise<void> {
    if (!m.handle) throw new SnapplaneError('IO', `member ${basename(m.path)} is unavailable`, { volume: this.label });
    const IOV_MAX = 1024;
    try {
      for (let s = first; s < first + count; s += IOV_MAX) {
        const n = Math.min(IOV_MAX, first + count - s);
        const iov = Array.from({ length: n }, (_, k) => slot(s + k));
        let done = (await m.handle.readv(iov, (MEMBER_DATA_START + s) * BLOCK_SIZE)).bytesRead;
        // A short read (a signal) finishes block by block; the member's end inside its stripes is a fault.
        for (let k = Math.floor(done / BLOCK_SIZE); done < n * BLOCK_SIZE; k++) {
          let at = done - k * BLOCK_SIZE;
          while (at < BLOCK_SIZE) {
            const { bytesRead } = await m.handle.read(iov[k], at, BLOCK_SIZE - at, (MEMBER_DATA_START + s + k) * BLOCK_SIZE + at);
            if (bytesRead === 0) throw this.endedEarly(m, s + k);
            at += bytesRead;
          }
          done = (k + 1) * BLOCK_SIZE;
        }
      }
    } catch (e) {
      throw asIoError(e, `read failed on member ${basename(m.path)}`, { volume: this.label });
    }
  }

  /** Rebuilds one block from the other members and parity (used when its checksum fails on the member). */
  async reconstructBlock(vbn: number): Promise<Buffer> {
    this.checkRange(vbn, 1);
    const { member, stripe } = this.locate(vbn);
    const others = this.members.filter((o) => o.index !== member);
    if (others.some((o) => this.unavailable(o, stripe))) {
      throw new SnapplaneError('IO', `cannot reconstruct VBN ${vbn}: another member is unavailable`, { volume: this.label, vbn });
    }
    const parts = await Promise.all(others.map((o) => this.readMember(o, stripe, 1)));
    const out = parts[0];
    for (let k = 1; k < parts.length; k++) xorInto(out, parts[k]);
    return out;
  }

  /** The data member VBN `vbn` lives on. */
  memberOf(vbn: number): number {
    return this.locate(vbn).member;
  }

  /** Writes a verified good copy of a block back to its member (parity is already right for it). */
  async repairBlock(vbn: number, data: Buffer): Promise<void> {
    const { member, diskBlock } = this.locate(vbn);
    const m = this.members[member];
    if (!m.handle || this.readOnly) return;
    await writeFully(m.handle, data, 0, BLOCK_SIZE, diskBlock * BLOCK_SIZE);
  }

  /** Writes blocks; concurrent calls are serialized, because a partial stripe's parity reads its neighbours. */
  writeBlocks(vbn: number, data: Buffer | Buffer[]): Promise<void> {
    return this.writeLock.run(() => this.writeBlocksNow(vbn, data));
  }

  private async writeBlocksNow(vbn: number, data: Buffer | Buffer[]): Promise<void> {
    if (this.readOnly) throw new SnapplaneError('READ_ONLY', `device '${this.label}' is read-only`, { volume: this.label });
    this.recordMissing();
    await this.labelsWritten();
    if (!this.labelsChecked) {
      await this.checkLabels();
      this.labelsChecked = true;
    }
    const buf = Array.isArray(data) ? (data.length === 1 ? data[0] : Buffer.concat(data)) : data;
    if (buf.length % BLOCK_SIZE !== 0) throw new SnapplaneError('INVALID', `write of ${buf.length} bytes is not whole blocks`, { vbn });
    const count = buf.length / BLOCK_SIZE;
    this.checkRange(vbn, count);
    const first = Math.floor(vbn / this.n);
    const last = Math.floor((vbn + count - 1) / this.n);
    await this.markIntent(first, last);
    const stripes = last - first + 1;
    // Per member, the new contents of stripes [first, last]; partial first/last stripes take the old blocks.
    const columns: Buffer[] = [];
    for (let m = 0; m < this.n; m++) {
      const col = Buffer.allocUnsafe(stripes * BLOCK_SIZE);
      const needOld: number[] = [];
      for (let s = first; s <= last; s++) {
        const v = s * this.n + m;
        if (v >= vbn && v < vbn + count) buf.copy(col, (s - first) * BLOCK_SIZE, (v - vbn) * BLOCK_SIZE, (v - vbn + 1) * BLOCK_SIZE);
        else needOld.push(s);
      }
      for (const s of needOld) {
        const old = await this.memberStripes(m, s, 1);
        old.copy(col, (s - first) * BLOCK_SIZE);
      }
      columns.push(col);
    }
    const parity = Buffer.from(columns[0]);
    for (let m = 1; m < this.n; m++) xorInto(parity, columns[m]);
    columns.push(parity);
    await Promise.all(
      this.members.map(async (mem, i) => {
        if (!mem.handle || mem.state === 'missing' || mem.state === 'failed') return;
        try {
          await writeFully(mem.handle, columns[i], 0, columns[i].length, (MEMBER_DATA_START + first) * BLOCK_SIZE);
        } catch (e) {
          throw asIoError(e, `write failed on member ${basename(mem.path)}`, { volume: this.label, vbn });
        }
      }),
    );
  }

  /**
   * Fails a member whose label no longer reads back as this group's (a disk wiped or swapped under a running
   * group), before the first write after each flush. A partial stripe's parity is computed from the blocks beside
   * the written ones: a wiped member's zeros would go into the parity that is then the only copy of its data.
   * A member wiped between two flushes is caught at the next one; until then its blocks fail their checksums on
   * read and are rebuilt from parity.
   */
  private async checkLabels(): Promise<void> {
    for (const m of this.members) {
      if (!m.handle || m.state !== 'ok') continue;
      const b = Buffer.alloc(BLOCK_SIZE);
      const got = await m.handle.read(b, 0, BLOCK_SIZE, LABEL_BLOCK * BLOCK_SIZE).then(
        (r) => r.bytesRead,
        () => 0,
      );
      const label = got === BLOCK_SIZE ? decodeLabel(b) : null;
      if (label && label.groupId === this.groupLabel.groupId && label.index === m.index && label.generation === this.groupLabel.generation) continue;
      if (this.members.some((o) => o.index !== m.index && o.state !== 'ok')) {
        throw new SnapplaneError('IO', `member ${basename(m.path)} of RAID-4 group '${this.label}' lost its label while another member is unavailable; the group cannot be written`, { volume: this.label });
      }
      await this.failMember(m.index, "its label is no longer this group's: the image was wiped or replaced while the group ran");
    }
  }

  private async markIntent(first: number, last: number): Promise<void> {
    const p = this.parity;
    if (!p.handle || p.state !== 'ok') return;
    let changed = false;
    for (let r = Math.floor(first / INTENT_REGION_STRIPES); r <= Math.floor(last / INTENT_REGION_STRIPES); r++) {
      const byte = r >>> 3;
      const bit = 1 << (r & 7);
      if (byte >= this.intent.length) continue;
      if ((this.intent[byte] & bit) === 0) {
        this.intent[byte] |= bit;
        changed = true;
      }
    }
    if (!changed) return;
    await writeFully(p.handle, this.intent, 0, this.intent.length, (LABEL_BLOCK + 1) * BLOCK_SIZE);
    await p.handle.datasync();
    this.intentDirty = true;
  }

  /** After an unclean stop: recompute parity for every region the intent log marks, then clear it. */
  private async replayIntentLog(): Promise<void> {
    const p = this.parity;
    if (!p.handle || p.state !== 'ok') return;
    const log = Buffer.alloc(this.intent.length);
    await p.handle.read(log, 0, log.length, (LABEL_BLOCK + 1) * BLOCK_SIZE);
    if (log.every((b) => b === 0)) return;
    if (this.members.some((m) => m.state !== 'ok')) return; // parity cannot be recomputed; checksums guard reads
    for (let r = 0; r < log.length * 8; r++) {
      if ((log[r >>> 3] & (1 << (r & 7))) === 0) continue;
      const s0 = r * INTENT_REGION_STRIPES;
      const s1 = Math.min(this.groupLabel.stripes, s0 + INTENT_REGION_STRIPES);
      for (let s = s0; s < s1; s += 1024) await this.rewriteParity(s, Math.min(1024, s1 - s));
    }
    await p.handle.datasync();
    this.intent.fill(0);
    await writeFully(p.handle, this.intent, 0, this.intent.length, (LABEL_BLOCK + 1) * BLOCK_SIZE);
    await p.handle.datasync();
  }

  private async rewriteParity(first: number, count: number): Promise<void> {
    const cols = await Promise.all(Array.from({ length: this.n }, (_, m) => this.readMember(this.members[m], first, count)));
    const parity = cols[0];
    for (let m = 1; m < this.n; m++) xorInto(parity, cols[m]);
    await writeFully(this.parity.handle!, parity, 0, parity.length, (MEMBER_DATA_START + first) * BLOCK_SIZE);
  }

  async flush(): Promise<void> {
    if (this.readOnly) return;
    try {
      await this.labelsWritten();
      await Promise.all(this.members.map((m) => (m.handle && m.state !== 'failed' ? m.handle.datasync() : Promise.resolve())));
      if (this.intentDirty && this.parity.handle && this.parity.state === 'ok') {
        // Everything written so far is durable on every member: no stripe is inconsistent any more.
        this.intent.fill(0);
        await writeFully(this.parity.handle, this.intent, 0, this.intent.length, (LABEL_BLOCK + 1) * BLOCK_SIZE);
        await this.parity.handle.datasync();
        this.intentDirty = false;
      }
      this.labelsChecked = false;
    } catch (e) {
      throw asIoError(e, `flush failed on '${this.label}'`, { volume: this.label });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.labelWrite.catch(() => undefined);
    await Promise.all(this.members.map((m) => m.handle?.close().catch(() => undefined)));
    for (const m of this.members) m.handle = null;
  }

  health(): DeviceHealth {
    const members: DeviceMember[] = this.members.map((m) => ({
      index: m.index,
      path: m.path,
      role: m.index === this.n ? 'parity' : 'data',
      state: m.state,
      ...(m.failure ? { failure: m.failure } : {}),
    }));
    return { kind: 'raid4', degraded: this.members.some((m) => m.state !== 'ok'), members };
  }

  private checkRange(vbn: number, count: number): void {
    if (this.closed) throw new SnapplaneError('CLOSED', `device '${this.label}' is closed`, { volume: this.label });
    if (!Number.isInteger(vbn) || vbn < 0 || count < 0 || vbn + count > this.blockCount) {
      throw new SnapplaneError('IO', `block range ${vbn}+${count} is outside '${this.label}' (${this.blockCount} blocks)`, { volume: this.label, vbn });
    }
  }

  // ---- membership ----------------------------------------------------------------------------------------

  private async writeLabels(): Promise<void> {
    for (const m of this.members) {
      if (!m.handle || m.state === 'failed' || m.state === 'missing') continue;
      const label: MemberLabel = { ...this.groupLabel, index: m.index, role: m.index === this.n ? 'parity' : 'data' };
      await writeFully(m.handle, encodeLabel(label), 0, BLOCK_SIZE, LABEL_BLOCK * BLOCK_SIZE);
      await m.handle.datasync();
    }
  }

  /** Takes a member out of the group (a drill, or after errors); the group runs degraded. */
  async failMember(index: number, reason = 'failed by `snapplane raid fail`'): Promise<void> {
    const m = this.memberAt(index);
    const out = this.members.find((o) => o.index !== index && o.state !== 'ok');
    if (out) {
      const why = out.failure ? ` (${out.failure})` : '';
      throw new SnapplaneError(
        'INVALID',
        `cannot fail member ${index}: member ${out.index} is already ${out.state}${why}, and with two members out the group would lose data; rebuild member ${out.index} first (snapplane raid replace ${this.label} ${out.index} <new-image>)`,
        { volume: this.label },
      );
    }
    await this.markFailed(m, reason);
  }

  private memberAt(index: number): Member {
    const m = this.members[index];
    if (!Number.isInteger(index) || !m) {
      throw new SnapplaneError('NOT_FOUND', `no member ${index} (members are 0..${this.n}; ${this.n} is parity)`, { volume: this.label });
    }
    return m;
  }

  /** Puts a fresh image in place of a failed or missing member; call rebuildStep until it returns true. */
  async beginReplace(index: number, imageName: string): Promise<void> {
    const m = this.memberAt(index);
    if (m.state === 'ok') throw new SnapplaneError('INVALID', `member ${index} is healthy; fail it first (raid fail)`, { volume: this.label });
    if (this.members.some((o) => o.index !== index && o.state !== 'ok')) {
      throw new SnapplaneError('IO', `cannot rebuild member ${index}: another member is unavailable`, { volume: this.label });
    }
    // Members live in the group folder: a path elsewhere would be quietly taken as a name in it.
    if (basename(imageName) !== imageName || imageName === '' || imageName === '.' || imageName === '..') {
      throw new SnapplaneError('INVALID', `'${imageName}' is not a file name: a new member image is made inside the group folder '${this.label}'; give a name such as 'data-${index}b.img'`, { volume: this.label });
    }
    const path = join(this.label, imageName);
    let handle: FileHandle;
    try {
      handle = await open(path, 'wx+');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new SnapplaneError('EXISTS', `'${path}' already exists; name a new image, or move that one out of the group folder first`, { volume: this.label, path });
      }
      throw asIoError(e, `cannot create '${path}'`, { volume: this.label });
    }
    await handle.truncate((MEMBER_DATA_START + this.groupLabel.stripes) * BLOCK_SIZE);
    // Writes during the rebuild reach the new image only: a missing member's old image must stay stale if it
    // comes back before the rebuild has finished (or after one that died).
    if (m.state === 'missing') {
      m.state = 'failed';
      m.failure = MISSED_WRITES;
      await this.recordFailed(m.index, MISSED_WRITES).catch(async (e: unknown) => {
        await handle.close();
        await rm(path, { force: true });
        throw asIoError(e, `cannot record member ${index} failed in the labels of '${this.label}'`, { volume: this.label });
      });
    }
    m.handle = handle;
    m.path = path;
    m.state = 'rebuilding';
    this.rebuildWatermark = 0;
  }

  /**
   * Reconstructs the next `stripes` stripes of the member being rebuilt; true when it is complete. With `holdsData`
   * (does any of these VBNs hold data?), stripes that hold none are skipped: the new image reads zeros there, and
   * the first write into such a stripe computes its parity from all members anyway (writes never patch parity).
   */
  async rebuildStep(stripes = 1024, holdsData?: (vbn: number, count: number) => boolean): Promise<{ done: number; total: number; complete: boolean; rebuilt: number }> {
    const m = this.members.find((o) => o.state === 'rebuilding');
    const total = this.groupLabel.stripes;
    if (!m) return { done: total, total, complete: true, rebuilt: 0 };
    const first = this.rebuildWatermark;
    const count = Math.min(stripes, total - first);
    let rebuilt = 0;
    if (count > 0) {
      const batch = 1024;
      const pieces = liveRuns(first, count, batch, (s) => !holdsData || holdsData(s * this.n, this.n));
      // Pipelined: the next piece's member reads run while this piece is XORed (in WebAssembly SIMD, in the
      // arena the reads land in) and written.
      const others = this.members.filter((o) => o.index !== m.index);
      this.rebuildArena ??= new XorArena(2 * others.length * batch * BLOCK_SIZE);
      const arena = this.rebuildArena;
      this.rebuildBuffers ??= [0, 1].map(() => others.map(() => arena.alloc(batch * BLOCK_SIZE)));
      const bufs = this.rebuildBuffers;
      const read = (at: number, n: number, side: number): Promise<Buffer[]> =>
        Promise.all(others.map((o, k) => this.readMember(o, at, n, undefined, bufs[side][k])));
      let pending = pieces.length > 0 ? read(pieces[0][0], pieces[0][1], 0) : null;
      for (let i = 0, side = 0; i < pieces.length; i++, side ^= 1) {
        const [at, n] = pieces[i];
        const parts = await pending!;
        if (i + 1 < pieces.length) pending = read(pieces[i + 1][0], pieces[i + 1][1], side ^ 1);
        const out = parts[0];
        for (let k = 1; k < parts.length; k++) arena.xorInto(out, parts[k], n * BLOCK_SIZE);
        // The new image is sparse and reads back zeros where nothing was written: skip all-zero stretches.
        if (!isZero(out)) await writeFully(m.handle!, out, 0, out.length, (MEMBER_DATA_START + at) * BLOCK_SIZE);
        rebuilt += n;
      }
      this.rebuildWatermark = first + count;
    }
    if (this.rebuildWatermark >= total) {
      this.rebuildArena = null;
      this.rebuildBuffers = null;
      await m.handle!.datasync();
      m.state = 'ok';
      m.failure = undefined;
      const { [m.index]: _cleared, ...reasons } = this.groupLabel.reasons ?? {};
      this.groupLabel = { ...this.groupLabel, generation: this.groupLabel.generation + 1, failedMask: this.groupLabel.failedMask & ~(1 << m.index), reasons };
      await this.queueLabels();
      return { done: total, total, complete: true, rebuilt };
    }
    return { done: this.rebuildWatermark, total, complete: false, rebuilt };
  }

  /**
   * Checks parity of stripes [first, first+count); rewrites parity that does not match (data is verified above).
   * With `holdsData`, stripes that hold no data are not checked (a rebuild leaves their parity stale on purpose).
   */
  async scrubStripes(first: number, count: number, repair: boolean, holdsData?: (vbn: number, count: number) => boolean): Promise<{ mismatches: number[]; checked: number }> {
    const mismatches: number[] = [];
    if (this.members.some((m) => m.state !== 'ok')) return { mismatches, checked: 0 };
    let checked = 0;
    for (const [at, n] of liveRuns(first, count, count, (s) => !holdsData || holdsData(s * this.n, this.n))) {
      const cols = await Promise.all(this.members.map((m) => this.readMember(m, at, n, `scrub/${m.index}`)));
      const x = Buffer.from(cols[0]);
      for (let m = 1; m <= this.n; m++) xorInto(x, cols[m]);
      for (let s = 0; s < n; s++) {
        const block = x.subarray(s * BLOCK_SIZE, (s + 1) * BLOCK_SIZE);
        if (block.some((b) => b !== 0)) mismatches.push(at + s);
      }
      checked += n;
    }
    if (repair && mismatches.length > 0 && !this.readOnly) {
      for (const s of mismatches) await this.rewriteParity(s, 1);
      await this.parity.handle!.datasync();
    }
    return { mismatches, checked };
  }

  /** Stripes in the group. */
  get stripeCount(): number {
    return this.groupLabel.stripes;
  }

  /** Data members in the group. */
  get dataMembers(): number {
    return this.n;
  }
}

/**
 * The stripes of [first, first+count) for which `live(stripe)` holds, as runs of at most `max` stripes. Gaps of
 * fewer than 16 dead stripes are read through: one longer read costs less than two seeks.
 */
export function liveRuns(first: number, count: number, max: number, live: (stripe: number) => boolean): [number, number][] {
  const runs: [number, number][] = [];
  let start = -1;
  let end = -1;
  for (let s = first; s < first + count; s++) {
    if (!live(s)) continue;
    if (start >= 0 && s - end <= 16 && s - start < max) {
      end = s + 1;
      continue;
    }
    if (start >= 0) runs.push([start, end - start]);
    start = s;
    end = s + 1;
  }
  if (start >= 0) runs.push([start, end - start]);
  return runs;
}
