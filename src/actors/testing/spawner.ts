/**
 * Test processes started by a small helper process instead of this one. Starting a process forks
 * the one that starts it, and on Linux that fork costs with the parent's memory: with PGlite open
 * (its wasm heap) about 15 ms on an idle machine and 60 ms on a busy one, during which nothing
 * else in this process runs — every other worker, the lead, the database. The helper is a bare
 * `node -e` (no modules of ours), so its fork is cheap, and it happens beside our event loop.
 *
 * What a test run sees is what `spawn` gives (`SpawnedProcess`): a pid once started, 'error'
 * without one when the program cannot start (ENOENT, EACCES, invalid arguments), output in
 * arrival order, 'exit', then 'close'. The process group is the child's own, as before: the
 * helper kills it on request and, as soon as the leader exits, kills what is left of it (what
 * `run-tests.ts` does at exit). The helper dies with this process: when its IPC channel closes
 * (even after a `kill -9` of the service) it kills every group it started and exits, and bwrap's
 * `--die-with-parent` follows. When the helper cannot be used, `spawn` runs here, as before.
 */
import { spawn as spawnHere, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';

/** The part of a ChildProcess a test run uses. */
export interface SpawnedProcess extends EventEmitter {
  /** Set once the program started; undefined while starting or when it could not start. */
  readonly pid: number | undefined;
  readonly stdout: EventEmitter & { destroy(): void };
  readonly stderr: EventEmitter & { destroy(): void };
  /** Sends `signal` to the child's whole process group (gone already: not an error). */
  killGroup(signal: NodeJS.Signals): void;
  on(event: 'error', listener: (err: NodeJS.ErrnoException) => void): this;
  on(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
  on(event: 'close', listener: () => void): this;
}

export interface SpawnRequest {
  file: string;
  args: readonly string[];
  cwd: string;
  env: Record<string, string>;
}

// Plain CommonJS for `node -e`: no imports of ours, nothing to compile.
const HELPER = `
const { spawn } = require('node:child_process');
const kids = new Map();
const send = (m) => { if (process.connected) process.send(m); };
const killGroup = (pid, sig) => { try { process.kill(-pid, sig); } catch {} };
process.on('message', (m) => {
  if (m.t === 'spawn') {
    let c;
    try {
      c = spawn(m.file, m.args, { cwd: m.cwd, env: m.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'], shell: false });
    } catch (e) {
      send({ t: 'error', id: m.id, message: String(e && e.message), code: e && e.code });
      send({ t: 'close', id: m.id });
      return;
    }
    kids.set(m.id, c);
    if (c.pid !== undefined) send({ t: 'pid', id: m.id, pid: c.pid });
    const out = (d) => send({ t: 'data', id: m.id, d });
    c.stdout.on('data', out);
    c.stderr.on('data', out);
    c.stdout.on('error', () => {});
    c.stderr.on('error', () => {});
    c.on('error', (e) => { if (c.pid === undefined) send({ t: 'error', id: m.id, message: String(e && e.message), code: e && e.code }); });
    c.on('exit', (code, signal) => { if (c.pid !== undefined) killGroup(c.pid, 'SIGKILL'); send({ t: 'exit', id: m.id, code, signal }); });
    c.on('close', () => send({ t: 'close', id: m.id }));
  } else if (m.t === 'kill') {
    const c = kids.get(m.id);
    if (c && c.pid !== undefined) killGroup(c.pid, m.sig);
  } else if (m.t === 'done') {
    const c = kids.get(m.id);
    kids.delete(m.id);
    if (c) { c.stdout.destroy(); c.stderr.destroy(); }
  }
});
process.on('disconnect', () => {
  for (const c of kids.values()) if (c.pid !== undefined) killGroup(c.pid, 'SIGKILL');
  process.exit(0);
});
`;

type HelperMessage =
  | { t: 'pid'; id: number; pid: number }
  | { t: 'data'; id: number; d: Uint8Array }
  | { t: 'error'; id: number; message: string; code?: string }
  | { t: 'exit'; id: number; code: number | null; signal: NodeJS.Signals | null }
  | { t: 'close'; id: number };

class RemoteProcess extends EventEmitter implements SpawnedProcess {
  pid: number | undefined;
  readonly stdout: EventEmitter & { destroy(): void };
  readonly stderr: EventEmitter & { destroy(): void };
  exited = false;

  constructor(
    readonly id: number,
    private readonly helper: Helper,
  ) {
    super();
    const stream = () => Object.assign(new EventEmitter(), { destroy: () => helper.done(this) });
    this.stdout = stream();
    this.stderr = stream();
  }

  killGroup(signal: NodeJS.Signals): void {
    this.helper.kill(this, signal);
  }

  receive(m: HelperMessage): void {
    switch (m.t) {
      case 'pid':
        this.pid = m.pid;
        return;
      case 'data':
        // Output is read from stdout and stderr as it arrives; the run keeps them interleaved.
        this.stdout.emit('data', Buffer.from(m.d.buffer, m.d.byteOffset, m.d.byteLength));
        return;
      case 'error':
        this.emit('error', Object.assign(new Error(m.message), m.code === undefined ? {} : { code: m.code }));
        return;
      case 'exit':
        this.exited = true;
        this.emit('exit', m.code, m.signal);
        return;
      case 'close':
        this.helper.forget(this);
        this.emit('close');
    }
  }
}

class Helper {
  private readonly child: ChildProcess;
  private readonly running = new Map<number, RemoteProcess>();
  private nextId = 1;
  dead = false;

  constructor(onDeath: () => void) {
    // No execArgv and no env of ours: a bare node, started quickly, loading nothing.
    this.child = spawnHere(process.execPath, ['-e', HELPER], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'advanced', env: {} });
    this.child.unref();
    (this.child.channel as { unref?: () => void } | null | undefined)?.unref?.();
    this.child.on('message', (m: HelperMessage) => this.running.get(m.id)?.receive(m));
    const die = () => {
      if (this.dead) return;
      this.dead = true;
      onDeath();
      // Whatever was running there ended with it: told as an end without an exit status.
      for (const p of this.running.values()) {
        if (p.pid === undefined) p.receive({ t: 'error', id: p.id, message: 'the process helper ended' });
        else if (!p.exited) p.receive({ t: 'exit', id: p.id, code: null, signal: null });
        p.receive({ t: 'close', id: p.id });
      }
    };
    this.child.on('exit', die);
    this.child.on('error', die);
  }

  spawn(req: SpawnRequest): SpawnedProcess {
    const p = new RemoteProcess(this.nextId++, this);
    this.running.set(p.id, p);
    this.post({ t: 'spawn', id: p.id, file: req.file, args: [...req.args], cwd: req.cwd, env: req.env });
    return p;
  }

  kill(p: RemoteProcess, sig: NodeJS.Signals): void {
    this.post({ t: 'kill', id: p.id, sig });
  }

  done(p: RemoteProcess): void {
    this.post({ t: 'done', id: p.id });
  }

  forget(p: RemoteProcess): void {
    this.running.delete(p.id);
  }

  private post(m: object): void {
    if (!this.dead && this.child.connected) this.child.send(m);
  }
}

let helper: Helper | null = null;

/** Starts `req` (detached: its own process group) through the helper, started on first use. */
export function spawnDetached(req: SpawnRequest): SpawnedProcess {
  if (process.platform !== 'linux') return spawnLocally(req);
  helper ??= new Helper(() => (helper = null));
  return helper.spawn(req);
}

/** The same, from this process (`spawn` of Node). Throws as it does for invalid arguments. */
export function spawnLocally(req: SpawnRequest): SpawnedProcess {
  const child = spawnHere(req.file, [...req.args], { cwd: req.cwd, env: req.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'], shell: false });
  return Object.assign(child, {
    killGroup(sig: NodeJS.Signals) {
      if (child.pid !== undefined) killProcessGroup(child.pid, sig);
    },
  }) as unknown as SpawnedProcess;
}

/** Sends `sig` to the process group led by `pid`. A group that is already gone is not an error. */
export function killProcessGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch (thrown) {
    // ESRCH: every member has exited. EPERM (macOS, when only zombies remain): nothing left that
    // we could kill. Anything else (EINVAL: a bad signal name) is a bug worth crashing on.
    const err = thrown as NodeJS.ErrnoException;
    if (err.code !== 'ESRCH' && err.code !== 'EPERM') throw err;
  }
}
