/**
 * A compact, deterministic view of a workspace for the model's prompt: the file list, then the
 * contents of the files most likely to matter, within a byte budget.
 */
import type { Dirent } from 'node:fs';
import { lstat, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

export interface DescribeOptions {
  /** Budget for the whole returned text, in UTF-8 bytes. Default 48 000. */
  maxBytes?: number;
  /** At most this many paths in the file list. Default 400. */
  maxEntries?: number;
  /** Words and paths from the task text; files they name are shown first. */
  hints?: readonly string[];
}

const SKIP_DIRS = new Set(['.git', 'node_modules', 'dist', 'build', 'coverage', '.troupe']);
const MAX_FILE_BYTES = 64 * 1024;
// Stops a pathological tree (a checked-in dependency dir under another name) from costing seconds.
const MAX_WALK = 50_000;
/** File reads and stats in flight at once. */
const READ_AHEAD = 16;
const SOURCE_EXTS = new Set([
  '.ts', '.tsx', '.mts', '.cts', '.js', '.jsx', '.mjs', '.cjs', '.py', '.rb', '.go', '.rs', '.java', '.kt',
  '.c', '.h', '.cc', '.cpp', '.hpp', '.cs', '.php', '.swift', '.scala', '.sh', '.sql', '.html', '.css',
  '.scss', '.vue', '.svelte', '.json', '.yaml', '.yml', '.toml', '.ini', '.cfg', '.md', '.txt',
]);
const SOURCE_NAMES = new Set(['readme', 'makefile', 'dockerfile', 'procfile', '.gitignore', '.env.example']);
// Generated and long; worth showing only when the task names them.
const LOCK_FILES = new Set(['package-lock.json', 'yarn.lock', 'pnpm-lock.yaml', 'poetry.lock', 'cargo.lock', 'composer.lock', 'gemfile.lock', 'go.sum']);

interface FileEntry {
  rel: string;
  /** Size in bytes; -1 for a symlink, whose content is never read. */
  size: number;
}

/** Describes `root` as text: sorted file list (with a "more files" note when cut), then file contents. */
export async function describeWorkspace(root: string, opts: DescribeOptions = {}): Promise<string> {
  const maxBytes = opts.maxBytes ?? 48_000;
  const maxEntries = opts.maxEntries ?? 400;
  const { files, complete } = await listFiles(root);
  if (files.length === 0) return 'The workspace is empty.\n';

  let out = `Files in the workspace (${complete ? files.length : `more than ${files.length}`}):\n`;
  let shown = 0;
  for (const file of files) {
    const line = `${file.rel}\n`;
    if (shown >= maxEntries || byteLength(out) + byteLength(line) > maxBytes) break;
    out += line;
    shown += 1;
  }
  if (shown < files.length) out += `(${complete ? '' : 'at least '}${files.length - shown} more files not shown)\n`;

  let used = byteLength(out);
  // The section is at least header + size: a file for which that cannot fit is never read.
  const fits = (file: FileEntry) => used + byteLength(`\n--- ${file.rel} ---\n`) + file.size <= maxBytes;
  const ranked = rankForContents(files, opts.hints ?? []);
  for (let i = 0; i < ranked.length; ) {
    // Read ahead in parallel; the choice below is the same file-by-file one as without it.
    const batch: FileEntry[] = [];
    while (i < ranked.length && batch.length < READ_AHEAD) {
      const file = ranked[i++]!;
      if (fits(file)) batch.push(file);
    }
    const contents = await Promise.all(batch.map((file) => readText(path.join(root, file.rel))));
    batch.forEach((file, j) => {
      const content = contents[j];
      if (content == null || !fits(file)) return;
      const section = `\n--- ${file.rel} ---\n${content}${content.endsWith('\n') ? '' : '\n'}`;
      const size = byteLength(section);
      if (used + size > maxBytes) return;
      out += section;
      used += size;
    });
  }
  return out;
}

/** Every visible file under `root`, sorted by path; `complete` is false when the walk was capped. */
async function listFiles(root: string): Promise<{ files: FileEntry[]; complete: boolean }> {
  const files: FileEntry[] = [];
  const pending = [''];
  while (pending.length > 0) {
    const dir = pending.pop() ?? '';
    let entries: Dirent[];
    try {
      entries = await readdir(path.join(root, dir), { withFileTypes: true });
    } catch {
      continue;
    }
    const regular: string[] = [];
    for (const entry of entries) {
      const rel = dir === '' ? entry.name : `${dir}/${entry.name}`;
      if (entry.isDirectory()) {
        const hidden = entry.name.startsWith('.') && entry.name !== '.github';
        if (!hidden && !SKIP_DIRS.has(entry.name)) pending.push(rel);
      } else if (entry.isSymbolicLink()) {
        files.push({ rel, size: -1 });
      } else if (entry.isFile() && entry.name !== '.git') {
        regular.push(rel);
      }
    }
    // Sizes of a directory's files, READ_AHEAD at a time.
    for (let i = 0; i < regular.length && files.length < MAX_WALK; i += READ_AHEAD) {
      const chunk = regular.slice(i, i + READ_AHEAD);
      const infos = await Promise.all(chunk.map((rel) => lstat(path.join(root, rel)).catch(() => null)));
      chunk.forEach((rel, j) => {
        const info = infos[j];
        if (info) files.push({ rel, size: info.size });
      });
    }
    if (files.length >= MAX_WALK) return { files: files.slice(0, MAX_WALK).sort(byPath), complete: false };
  }
  return { files: files.sort(byPath), complete: true };
}

/**
 * Files worth showing, best first: named by a hint (path or basename), then whose stem is a hint
 * word, then ordinary source/config/docs files; smallest first within each group.
 */
function rankForContents(files: readonly FileEntry[], hints: readonly string[]): FileEntry[] {
  const wanted = new Set(hints.map(normaliseHint).filter((h) => h.length > 0));
  const ranked: { file: FileEntry; tier: number }[] = [];
  for (const file of files) {
    if (file.size < 0 || file.size > MAX_FILE_BYTES) continue;
    const rel = file.rel.toLowerCase();
    const base = path.posix.basename(rel);
    const ext = path.posix.extname(base);
    const stem = ext ? base.slice(0, -ext.length) : base;
    let tier: number;
    if (wanted.has(rel) || wanted.has(base)) tier = 0;
    else if (stem.length >= 3 && wanted.has(stem)) tier = 1;
    else if (LOCK_FILES.has(base)) continue;
    else if (SOURCE_EXTS.has(ext) || SOURCE_NAMES.has(base) || SOURCE_NAMES.has(stem)) tier = 2;
    else continue;
    ranked.push({ file, tier });
  }
  ranked.sort((a, b) => a.tier - b.tier || a.file.size - b.file.size || byPath(a.file, b.file));
  return ranked.map((r) => r.file);
}

function normaliseHint(hint: string): string {
  return hint
    .trim()
    .toLowerCase()
    .replace(/^[`'"([{<]+|[`'".,:;!?)\]}>]+$/g, '')
    .replace(/^\.\//, '');
}

/** The file as UTF-8 text, or null for binary (NUL in the first 8 KB), invalid UTF-8 or unreadable. */
async function readText(file: string): Promise<string | null> {
  try {
    const bytes = await readFile(file);
    if (bytes.length > MAX_FILE_BYTES || bytes.subarray(0, 8192).includes(0)) return null;
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

function byPath(a: FileEntry, b: FileEntry): number {
  // Code-unit order, not localeCompare: the same tree must give the same prompt on every machine.
  return a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0;
}

function byteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}
