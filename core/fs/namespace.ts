/** Paths and directories: resolving '/a/b', directory contents (loaded on demand, rewritten whole at a CP). */
import { SnapplaneError } from '../common/errors.js';
import { BLOCK_SIZE } from '../common/units.js';
import type { InodeTable } from './inode-table.js';
import { InodeType, MAX_NAME, ROOT_INODE, decodeDirectoryBlock, encodeDirectory, type Inode, type StoredDirEntry } from './format.js';

export interface ResolvedPath {
  ino: number;
  inode: Inode;
  /** Parent folder's inode (the root is its own parent). */
  parent: number;
  name: string;
  path: string;
}

/** Splits a volume path into components, refusing anything that climbs above the root. */
export function pathComponents(path: string, volume?: string): string[] {
  if (path.includes('\0')) throw new SnapplaneError('INVALID', `path contains a NUL byte`, { volume, path });
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) throw new SnapplaneError('OUTSIDE', `path '${path}' is outside the volume`, { volume, path });
      out.pop();
      continue;
    }
    out.push(part);
  }
  return out;
}

/** The canonical form of a volume path ('/a/b'). */
export function normalizePath(path: string, volume?: string): string {
  return '/' + pathComponents(path, volume).join('/');
}

/** Checks one name for a directory entry. */
export function validateName(name: string, path: string, volume?: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new SnapplaneError('INVALID', `invalid name '${name}'`, { volume, path });
  }
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME) {
    throw new SnapplaneError('INVALID', `name is longer than ${MAX_NAME} bytes: '${name.slice(0, 40)}…'`, { volume, path });
  }
}

export class Namespace {
  private readonly dirs = new Map<number, Map<string, StoredDirEntry>>();
  private readonly dirty = new Set<number>();

  constructor(
    private readonly inodes: InodeTable,
    private readonly volume: string,
  ) {}

  /** Resolves a path to its inode; NOT_FOUND names the first missing component. */
  async resolve(path: string): Promise<ResolvedPath> {
    const parts = pathComponents(path, this.volume);
    let ino = ROOT_INODE;
    let parent = ROOT_INODE;
    let walked = '';
    for (const name of parts) {
      const inode = await this.inodes.get(ino);
      if (inode.type !== InodeType.Dir) {
        throw new SnapplaneError('NOT_DIR', `'${walked || '/'}' is not a folder`, { volume: this.volume, path: walked || '/' });
      }
      const entry = (await this.entries(ino)).get(name);
      walked += '/' + name;
      if (!entry) throw new SnapplaneError('NOT_FOUND', `no such file or folder '${walked}' on volume '${this.volume}'`, { volume: this.volume, path: walked });
      parent = ino;
      ino = entry.inode;
    }
    return { ino, inode: await this.inodes.get(ino), parent, name: parts.at(-1) ?? '', path: '/' + parts.join('/') };
  }

  /** Resolves the folder that will hold `path` and the new entry's name. */
  async resolveParent(path: string): Promise<{ dir: ResolvedPath; name: string; path: string }> {
    const parts = pathComponents(path, this.volume);
    if (parts.length === 0) throw new SnapplaneError('INVALID', `the root folder cannot be the target here`, { volume: this.volume, path: '/' });
    const name = parts[parts.length - 1];
    const full = '/' + parts.join('/');
    validateName(name, full, this.volume);
    const dir = await this.resolve('/' + parts.slice(0, -1).join('/'));
    if (dir.inode.type !== InodeType.Dir) {
      throw new SnapplaneError('NOT_DIR', `'${dir.path}' is not a folder`, { volume: this.volume, path: dir.path });
    }
    return { dir, name, path: full };
  }

  /** Entries of folder `ino`, by name. */
  async entries(ino: number): Promise<Map<string, StoredDirEntry>> {
    const cached = this.dirs.get(ino);
    if (cached) return cached;
    const tree = await this.inodes.fileTree(ino, `folder inode ${ino}`);
    const list: StoredDirEntry[] = [];
    const blocks = tree.blockLength;
    for (let b = 0; b < blocks; b += 64) {
      for (const block of await tree.readBlocks(b, Math.min(64, blocks - b))) decodeDirectoryBlock(block, list);
    }
    const map = new Map(list.map((e) => [e.name, e]));
    this.dirs.set(ino, map);
    return map;
  }

  /** Starts an empty folder's entry list (a folder just created). */
  adoptEmpty(ino: number): void {
    this.dirs.set(ino, new Map());
    this.dirty.add(ino);
  }

  /** Adds an entry; EXISTS if the name is taken. */
  async link(dir: number, name: string, ino: number, type: InodeType, path: string): Promise<void> {
    const map = await this.entries(dir);
    if (map.has(name)) throw new SnapplaneError('EXISTS', `'${path}' already exists`, { volume: this.volume, path });
    map.set(name, { name, inode: ino, type });
    this.dirty.add(dir);
  }

  /** Removes an entry. */
  async unlink(dir: number, name: string): Promise<void> {
    const map = await this.entries(dir);
    map.delete(name);
    this.dirty.add(dir);
  }

  /** Drops a removed folder from the cache. */
  forget(ino: number): void {
    this.dirs.delete(ino);
    this.dirty.delete(ino);
  }

  get isDirty(): boolean {
    return this.dirty.size > 0;
  }

  /** CP: writes changed folders into their files. */
  async stage(): Promise<void> {
    for (const ino of this.dirty) {
      const map = this.dirs.get(ino);
      if (!map) continue;
      const tree = await this.inodes.fileTree(ino, `folder inode ${ino}`);
      const blocks = map.size === 0 ? [] : encodeDirectory(map.values());
      for (let i = 0; i < blocks.length; i++) await tree.writeBlock(i, blocks[i]);
      if (tree.blockLength > blocks.length) await tree.punch(blocks.length);
      tree.inode.size = blocks.length * BLOCK_SIZE;
      tree.inodeDirty = true;
      this.inodes.touch(ino);
    }
    this.dirty.clear();
    if (this.dirs.size > 4096) this.dirs.clear();
  }
}
